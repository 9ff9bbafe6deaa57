// Command xds-interop is a standard xDS client that Braid did not write: it
// uses Envoy's own generated Go code (go-control-plane) to open the Delta ADS
// stream on a Braid control plane, subscribes to Braid resource types by
// wildcard, ACKs every response and decodes each resource with descriptors
// compiled at runtime from the repository's proto/ directory.
//
// Output (stdout), one JSON object per line:
//
//	{"type_url":"...","name":"...","version":"...","resource":{...protojson...}}
//	{"type_url":"...","removed":"..."}
//
// It exits 0 once -count distinct resources are held, 1 on timeout or error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/bufbuild/protocompile"
	"github.com/bufbuild/protocompile/linker"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

const nodeID = "go-interop~1"

var defaultTypeURLs = []string{
	"type.googleapis.com/braid.workload.v1alpha1.Workload",
	"type.googleapis.com/braid.workload.v1alpha1.Service",
	"type.googleapis.com/braid.security.v1alpha1.Authorization",
	"type.googleapis.com/braid.security.v1alpha1.PeerAuthentication",
	"type.googleapis.com/braid.route.v1alpha1.HttpRoute",
}

// typeList is a repeatable, comma-separated -type flag.
type typeList []string

func (t *typeList) String() string { return strings.Join(*t, ",") }

func (t *typeList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*t = append(*t, s)
		}
	}
	return nil
}

type resourceLine struct {
	TypeURL  string          `json:"type_url"`
	Name     string          `json:"name"`
	Version  string          `json:"version"`
	Resource json.RawMessage `json:"resource"`
}

type removedLine struct {
	TypeURL string `json:"type_url"`
	Removed string `json:"removed"`
}

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "xds-interop: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	flags := flag.NewFlagSet("xds-interop", flag.ContinueOnError)
	var types typeList
	addr := flags.String("addr", "", "control plane xDS address (host:port, plaintext gRPC)")
	flags.Var(&types, "type", "type URL to subscribe to by wildcard (repeatable or comma-separated; default: Workload, Service, Authorization, PeerAuthentication, HttpRoute)")
	protoDir := flags.String("proto", "", "the repository's proto/ directory (default: found by walking up from the working directory)")
	count := flags.Int("count", 1, "exit 0 once this many distinct resources are held")
	timeout := flags.Duration("timeout", 30*time.Second, "give up (exit 1) after this long")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *addr == "" {
		return errors.New("-addr is required")
	}
	if *count < 1 {
		return errors.New("-count must be at least 1")
	}
	if len(types) == 0 {
		types = defaultTypeURLs
	}
	if *protoDir == "" {
		dir, err := findProtoDir()
		if err != nil {
			return err
		}
		*protoDir = dir
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	files, err := compileProtos(ctx, *protoDir)
	if err != nil {
		return err
	}
	for _, t := range types {
		if _, err := lookupMessage(files, t); err != nil {
			return err
		}
	}

	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("dial %s: %w", *addr, err)
	}
	defer conn.Close()

	client := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)
	streamCtx, cancelStream := context.WithCancel(ctx)
	defer cancelStream()
	stream, err := client.DeltaAggregatedResources(streamCtx)
	if err != nil {
		return fmt.Errorf("open DeltaAggregatedResources: %w", err)
	}
	node := &corev3.Node{Id: nodeID, UserAgentName: "braid-xds-interop"}
	for i, t := range types {
		req := &discoveryv3.DeltaDiscoveryRequest{
			TypeUrl:                t,
			ResourceNamesSubscribe: []string{"*"},
		}
		if i == 0 {
			req.Node = node
		}
		if err := stream.Send(req); err != nil {
			return fmt.Errorf("subscribe %s: %w", t, err)
		}
	}

	out := json.NewEncoder(stdout)
	marshal := protojson.MarshalOptions{Resolver: files.AsResolver()}
	held := map[string]struct{}{} // "<type url>\x00<name>"
	for {
		resp, err := stream.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("timeout after %s: holding %d of %d resources (%s)", *timeout, len(held), *count, heldNames(held))
			}
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("server closed the stream: holding %d of %d resources", len(held), *count)
			}
			return fmt.Errorf("receive: %w", err)
		}

		decodeErr := func() error {
			for _, r := range resp.GetResources() {
				body := r.GetResource()
				if body == nil {
					return fmt.Errorf("resource %q of %s has no body", r.GetName(), resp.GetTypeUrl())
				}
				if body.GetTypeUrl() != resp.GetTypeUrl() {
					return fmt.Errorf("resource %q: Any type URL %q differs from response type URL %q", r.GetName(), body.GetTypeUrl(), resp.GetTypeUrl())
				}
				md, err := lookupMessage(files, body.GetTypeUrl())
				if err != nil {
					return err
				}
				msg := dynamicpb.NewMessage(md)
				if err := proto.Unmarshal(body.GetValue(), msg); err != nil {
					return fmt.Errorf("decode %q as %s: %w", r.GetName(), md.FullName(), err)
				}
				js, err := marshal.Marshal(msg)
				if err != nil {
					return fmt.Errorf("protojson %q: %w", r.GetName(), err)
				}
				if err := out.Encode(resourceLine{TypeURL: resp.GetTypeUrl(), Name: r.GetName(), Version: r.GetVersion(), Resource: js}); err != nil {
					return fmt.Errorf("write stdout: %w", err)
				}
				held[resp.GetTypeUrl()+"\x00"+r.GetName()] = struct{}{}
			}
			for _, name := range resp.GetRemovedResources() {
				if err := out.Encode(removedLine{TypeURL: resp.GetTypeUrl(), Removed: name}); err != nil {
					return fmt.Errorf("write stdout: %w", err)
				}
				delete(held, resp.GetTypeUrl()+"\x00"+name)
			}
			return nil
		}()

		ack := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce()}
		if decodeErr != nil {
			// NACK (best effort) so the control plane records why, then
			// half-close and give the server a moment to read it before failing.
			ack.ErrorDetail = &statuspb.Status{Code: int32(codes.InvalidArgument), Message: decodeErr.Error()}
			if stream.Send(ack) == nil && stream.CloseSend() == nil {
				stop := time.AfterFunc(time.Second, cancelStream)
				for {
					if _, err := stream.Recv(); err != nil {
						break
					}
				}
				stop.Stop()
			}
			return decodeErr
		}
		if err := stream.Send(ack); err != nil {
			return fmt.Errorf("ACK nonce %q: %w", resp.GetNonce(), err)
		}
		if len(held) >= *count {
			_ = stream.CloseSend()
			return nil
		}
	}
}

func heldNames(held map[string]struct{}) string {
	names := make([]string, 0, len(held))
	for k := range held {
		names = append(names, strings.ReplaceAll(k, "\x00", " "))
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// findProtoDir walks up from the working directory to a directory holding proto/braid.
func findProtoDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		candidate := filepath.Join(dir, "proto")
		if st, err := os.Stat(filepath.Join(candidate, "braid")); err == nil && st.IsDir() {
			return candidate, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no proto/braid directory above the working directory; pass -proto")
		}
		dir = parent
	}
}

// compileProtos compiles every .proto file under <root>/braid with import
// roots <root> and <root>/xds, plus the well-known types.
func compileProtos(ctx context.Context, root string) (linker.Files, error) {
	var names []string
	err := filepath.WalkDir(filepath.Join(root, "braid"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".proto") {
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			names = append(names, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list protos under %s: %w", root, err)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no .proto files under %s", filepath.Join(root, "braid"))
	}
	compiler := protocompile.Compiler{
		Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
			ImportPaths: []string{root, filepath.Join(root, "xds")},
		}),
	}
	files, err := compiler.Compile(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("compile protos in %s: %w", root, err)
	}
	return files, nil
}

// lookupMessage finds the message named by a type URL's last path segment.
func lookupMessage(files linker.Files, typeURL string) (protoreflect.MessageDescriptor, error) {
	name := typeURL
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	d, err := files.AsResolver().FindDescriptorByName(protoreflect.FullName(name))
	if err != nil {
		return nil, fmt.Errorf("type URL %q: no message %s in proto/: %w", typeURL, name, err)
	}
	md, ok := d.(protoreflect.MessageDescriptor)
	if !ok {
		return nil, fmt.Errorf("type URL %q: %s is not a message", typeURL, name)
	}
	return md, nil
}
