package main

import (
	"net/http"

	"github.com/skiffkv/skiff"
)

// opsHandler is where the operations endpoints plug in: serve calls it
// once its node is open, and serves the handler it returns on
// --metrics-addr, for /metrics (Prometheus), /healthz and /readyz. The
// metrics work sets it, from a file of its own in this package, to the
// handler the root package provides; it must answer /readyz with 200 only
// while the node can serve (it knows a leader), since Kubernetes routes
// clients by it.
//
// Until it is set, --metrics-addr answers every path with 404 Not Found
// once the node is open, and serve logs a warning that nothing is served
// there.
var opsHandler func(n *skiff.Node) http.Handler

// opsServed reports whether this build serves anything on --metrics-addr.
func opsServed() bool { return opsHandler != nil }
