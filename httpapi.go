package skiff

import (
	"fmt"
	"net/http"
)

// HTTPOptions selects what Node.HTTPHandler serves beyond metrics and
// health.
type HTTPOptions struct {
	// Pprof serves Go's profiles under /debug/pprof/ (the index, named
	// profiles such as heap and goroutine, a CPU profile at
	// /debug/pprof/profile?seconds=N and an execution trace at
	// /debug/pprof/trace?seconds=N), for `go tool pprof`. Off by default:
	// profiles show the program's internals and a CPU profile or trace
	// costs CPU while it runs, so serve them only where operators alone
	// can reach.
	Pprof bool
}

// HTTPHandler returns the node's operations endpoints, for a port of
// their own (the skiff command serves it on --metrics-addr):
//
//   - /metrics: Prometheus metrics, as MetricsHandler;
//   - /healthz: 200 while the process runs and the node has not stopped
//     (Close, or stopped by itself: see Err), 503 after;
//   - /readyz: 200 while the node knows a leader and has applied close to
//     the commit index, the rule of the gRPC health service, 503
//     otherwise; the body says why in one line of text;
//   - /debug/pprof/: only with HTTPOptions.Pprof.
//
// The endpoints need no credentials and reveal no keys or values; like
// the gRPC health service they say how the node is, not what it holds.
// Only GET and HEAD are served. The handler starts the node's metrics
// (see MetricsHandler) when /metrics is first asked for, not before.
func (n *Node) HTTPHandler(opts HTTPOptions) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.MetricsHandler().ServeHTTP(w, r)
	}))
	mux.HandleFunc("GET /healthz", n.serveHealthz)
	mux.HandleFunc("GET /readyz", n.serveReadyz)
	if opts.Pprof {
		servePprof(mux)
	}
	return mux
}

func (n *Node) serveHealthz(w http.ResponseWriter, _ *http.Request) {
	if n.isClosed() {
		why := "the node is closed"
		if err := n.Err(); err != nil {
			why = "the node stopped: " + err.Error()
		}
		plain(w, http.StatusServiceUnavailable, why)
		return
	}
	plain(w, http.StatusOK, "ok")
}

func (n *Node) serveReadyz(w http.ResponseWriter, _ *http.Request) {
	ready, why := n.readiness()
	if !ready {
		plain(w, http.StatusServiceUnavailable, "not ready: "+why)
		return
	}
	plain(w, http.StatusOK, why)
}

// plain writes a one-line text answer that no cache keeps: health is
// only true when asked.
func plain(w http.ResponseWriter, code int, line string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintln(w, line)
}
