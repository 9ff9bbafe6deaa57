//go:build tools

// Package tools pins the control-plane programs that `cargo xtask cluster`
// builds with `go build -o <cache>/bin/<name> <package>`; the build tag keeps
// it out of every build, it only makes `go mod tidy` keep their dependencies.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
