package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/skiffkv/skiff"
)

// opsServer serves --metrics-addr: the node's HTTPHandler (/metrics,
// /healthz, /readyz, and /debug/pprof/ with --pprof). It listens from the
// start, before the node is open, so that a probe can tell a node that is
// still loading its snapshot or joining (alive, not ready) from one that
// is absent: until then /healthz answers 200 and every other path 503.
type opsServer struct {
	srv *http.Server
	h   atomic.Pointer[http.Handler]
}

// startOps listens on addr and serves the starting answers until attach.
func startOps(addr string, log *slog.Logger) (*opsServer, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, usagef("--metrics-addr: %v", err)
	}
	o := &opsServer{}
	o.srv = &http.Server{Handler: o, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() {
		if err := o.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("--metrics-addr stopped serving", "err", err)
		}
	}()
	log.Info("serving metrics and health", "metrics_addr", l.Addr().String())
	return o, nil
}

func (o *opsServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := o.h.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	if r.URL.Path == "/healthz" {
		// Alive: a liveness probe must not restart a node that takes a
		// while to open.
		http.Error(w, "ok: the node is starting", http.StatusOK)
		return
	}
	http.Error(w, "not ready: the node is starting", http.StatusServiceUnavailable)
}

// attach serves n's endpoints from now on. The node's metrics start
// here rather than at the first scrape, so that the first scrape already
// counts what happened since the node opened.
func (o *opsServer) attach(n *skiff.Node, opts skiff.HTTPOptions) {
	n.MetricsHandler()
	h := n.HTTPHandler(opts)
	o.h.Store(&h)
}

func (o *opsServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = o.srv.Shutdown(ctx)
}
