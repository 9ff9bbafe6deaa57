package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/anypb"
)

const (
	workloadType = "type.googleapis.com/braid.workload.v1alpha1.Workload"
	serviceType  = "type.googleapis.com/braid.workload.v1alpha1.Service"
	authzType    = "type.googleapis.com/braid.security.v1alpha1.Authorization"
)

// fakeADS is a scripted Delta ADS server: Workload subscribe -> {a, b};
// its ACK -> {c} plus removal of b; Authorization is answered only after
// that second ACK; Service gets nothing. It records every request.
type fakeADS struct {
	discoveryv3.UnimplementedAggregatedDiscoveryServiceServer
	t       *testing.T
	corrupt bool // send an undecodable Workload instead

	mu       sync.Mutex
	requests []*discoveryv3.DeltaDiscoveryRequest
}

func (f *fakeADS) resource(typeURL, name, js string) *discoveryv3.Resource {
	f.t.Helper()
	files, err := compileProtos(context.Background(), "../../proto")
	if err != nil {
		f.t.Fatal(err)
	}
	md, err := lookupMessage(files, typeURL)
	if err != nil {
		f.t.Fatal(err)
	}
	msg := dynamicpb.NewMessage(md)
	if err := protojson.Unmarshal([]byte(js), msg); err != nil {
		f.t.Fatal(err)
	}
	b, err := proto.Marshal(msg)
	if err != nil {
		f.t.Fatal(err)
	}
	if f.corrupt {
		b = []byte{0xff, 0xff, 0xff}
	}
	return &discoveryv3.Resource{Name: name, Version: "v-" + name, Resource: &anypb.Any{TypeUrl: typeURL, Value: b}}
}

func (f *fakeADS) DeltaAggregatedResources(stream discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	authzWanted, secondAcked := false, false
	sendAuthz := func() error {
		return stream.Send(&discoveryv3.DeltaDiscoveryResponse{
			TypeUrl: authzType, Nonce: "n3",
			Resources: []*discoveryv3.Resource{f.resource(authzType, "shop/deny-legacy",
				`{"name":"deny-legacy","namespace":"shop","action":"ACTION_DENY","rules":[{"sourceNamespaces":["legacy"]}]}`)},
		})
	}
	for {
		req, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		f.mu.Lock()
		f.requests = append(f.requests, req)
		f.mu.Unlock()
		switch {
		case req.GetTypeUrl() == workloadType && len(req.GetResourceNamesSubscribe()) > 0:
			err = stream.Send(&discoveryv3.DeltaDiscoveryResponse{
				TypeUrl: workloadType, Nonce: "n1",
				Resources: []*discoveryv3.Resource{
					f.resource(workloadType, "shop/a", `{"uid":"shop/a","name":"a","namespace":"shop","addresses":["xhIAAQ=="],"mode":"DATA_PLANE_MODE_AMBIENT"}`),
					f.resource(workloadType, "shop/b", `{"uid":"shop/b","name":"b","namespace":"shop"}`),
				},
			})
		case req.GetResponseNonce() == "n1" && req.GetErrorDetail() == nil:
			err = stream.Send(&discoveryv3.DeltaDiscoveryResponse{
				TypeUrl: workloadType, Nonce: "n2",
				Resources:        []*discoveryv3.Resource{f.resource(workloadType, "shop/c", `{"uid":"shop/c","name":"c","namespace":"shop"}`)},
				RemovedResources: []string{"shop/b"},
			})
		case req.GetResponseNonce() == "n2":
			secondAcked = true
			if authzWanted {
				err = sendAuthz()
			}
		case req.GetTypeUrl() == authzType && len(req.GetResourceNamesSubscribe()) > 0:
			authzWanted = true
			if secondAcked {
				err = sendAuthz()
			}
		}
		if err != nil {
			return err
		}
	}
}

func serve(t *testing.T, f *fakeADS) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func TestSubscribeDecodeAck(t *testing.T) {
	f := &fakeADS{t: t}
	addr := serve(t, f)
	var out bytes.Buffer
	err := run([]string{"-addr", addr, "-proto", "../../proto", "-count", "3", "-timeout", "20s"}, &out)
	if err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}

	var got []string
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("bad line %q: %v", sc.Text(), err)
		}
		if r, ok := line["removed"]; ok {
			got = append(got, fmt.Sprintf("removed %v", r))
			continue
		}
		res, _ := json.Marshal(line["resource"])
		got = append(got, fmt.Sprintf("%v %v %v %s", line["type_url"], line["name"], line["version"], res))
	}
	want := []string{
		workloadType + ` shop/a v-shop/a {"addresses":["xhIAAQ=="],"mode":"DATA_PLANE_MODE_AMBIENT","name":"a","namespace":"shop","uid":"shop/a"}`,
		workloadType + ` shop/b v-shop/b {"name":"b","namespace":"shop","uid":"shop/b"}`,
		workloadType + ` shop/c v-shop/c {"name":"c","namespace":"shop","uid":"shop/c"}`,
		`removed shop/b`,
		authzType + ` shop/deny-legacy v-shop/deny-legacy {"action":"ACTION_DENY","name":"deny-legacy","namespace":"shop","rules":[{"sourceNamespaces":["legacy"]}]}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("output:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.requests) < 3 || f.requests[0].GetNode().GetId() != nodeID {
		t.Fatalf("first request should carry node %q: %v", nodeID, f.requests)
	}
	subscribed := map[string]bool{}
	acked := map[string]bool{}
	for _, r := range f.requests {
		if len(r.GetResourceNamesSubscribe()) == 1 && r.GetResourceNamesSubscribe()[0] == "*" {
			subscribed[r.GetTypeUrl()] = true
		}
		if r.GetResponseNonce() != "" && r.GetErrorDetail() == nil {
			acked[r.GetResponseNonce()] = true
		}
	}
	for _, ty := range []string{workloadType, serviceType, authzType} {
		if !subscribed[ty] {
			t.Errorf("no wildcard subscription for %s", ty)
		}
	}
	for _, n := range []string{"n1", "n2"} {
		if !acked[n] {
			t.Errorf("nonce %s not ACKed", n)
		}
	}
}

func TestUndecodableResourceIsNackedAndFails(t *testing.T) {
	f := &fakeADS{t: t, corrupt: true}
	addr := serve(t, f)
	var out bytes.Buffer
	err := run([]string{"-addr", addr, "-proto", "../../proto", "-type", workloadType, "-count", "1", "-timeout", "20s"}, &out)
	if err == nil || !strings.Contains(err.Error(), "decode") {
		t.Fatalf("want a decode error, got %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.mu.Lock()
		var nack *discoveryv3.DeltaDiscoveryRequest
		for _, r := range f.requests {
			if r.GetResponseNonce() == "n1" && r.GetErrorDetail() != nil {
				nack = r
			}
		}
		f.mu.Unlock()
		if nack != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no NACK for nonce n1")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTimeout(t *testing.T) {
	f := &fakeADS{t: t}
	addr := serve(t, f)
	var out bytes.Buffer
	err := run([]string{"-addr", addr, "-proto", "../../proto", "-type", serviceType, "-timeout", "300ms"}, &out)
	if err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("want a timeout error, got %v", err)
	}
}
