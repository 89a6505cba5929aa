package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/skiffkv/skiff"
)

// runServe runs one node until ctx ends (SIGTERM or SIGINT), then hands
// leadership over if it leads and closes the node, so that the cluster
// elects no new leader by timeout and loses no time.
func runServe(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	sf, cfg, err := serveConfig(fs, args)
	if err != nil {
		return err
	}
	logger, err := newLogger(e.stderr, sf.logFormat, sf.logLevel)
	if err != nil {
		return err
	}
	cfg.Logger = logger
	var ops *opsServer
	if sf.metricsAddr != "" {
		if ops, err = startOps(sf.metricsAddr, logger); err != nil {
			return err
		}
		defer ops.close()
	}
	node, err := skiff.Open(ctx, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while joining: nothing to hand over
		}
		return fmt.Errorf("serve: %w", err)
	}
	if ops != nil {
		ops.attach(node)
	}
	logger.Info("serving", "id", node.ID(), "addr", node.Addr(), "client_addr", node.ClientAddr(), "dir", cfg.Dir)
	select {
	case <-ctx.Done():
	case <-node.Done():
		node.Close()
		return fmt.Errorf("serve: the node stopped: %w", node.Err())
	}
	return shutdown(node, logger, sf.shutdownTimeout)
}

// serveConfig reads serve's flags, environment and config file into a
// Config.
func serveConfig(fs *flag.FlagSet, args []string) (*serveFlags, skiff.Config, error) {
	sf := defineServeFlags(fs)
	rest, err := parseFlags(fs, args)
	if err != nil {
		return nil, skiff.Config{}, err
	}
	if len(rest) > 0 {
		return nil, skiff.Config{}, usagef("serve takes flags only, not %q", rest)
	}
	if err := applyEnvAndFile(fs, &sf.configFile); err != nil {
		return nil, skiff.Config{}, err
	}
	cfg, err := sf.config()
	return sf, cfg, err
}

// shutdown stops a node cleanly: a leader first hands leadership to the
// most up-to-date follower, so that writes pause for one round trip
// rather than an election timeout.
func shutdown(n *skiff.Node, log *slog.Logger, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if n.IsLeader() {
		log.Info("stopping: handing leadership over")
		err := n.TransferLeadership(ctx, "")
		switch {
		case errors.Is(err, skiff.ErrInvalidArgument): // a cluster of one
			log.Info("stopping: no other voter to hand leadership to")
		case err != nil:
			log.Warn("stopping without handing leadership over", "err", err)
		default:
			log.Info("leadership handed over")
		}
	}
	if err := n.Close(); err != nil {
		return fmt.Errorf("serve: close: %w", err)
	}
	log.Info("stopped")
	return nil
}

// opsServer serves --metrics-addr. It listens from the start, answering
// 503 until the node is open, so that a probe sees a node that is still
// loading its snapshot as not ready rather than as absent.
type opsServer struct {
	srv *http.Server
	h   atomic.Pointer[http.Handler]
}

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
	if !opsServed() {
		log.Warn("this build serves no metrics or health endpoints on --metrics-addr yet: every path answers 404", "addr", l.Addr().String())
	}
	return o, nil
}

func (o *opsServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := o.h.Load()
	if h == nil {
		http.Error(w, "skiff: the node is starting", http.StatusServiceUnavailable)
		return
	}
	(*h).ServeHTTP(w, r)
}

func (o *opsServer) attach(n *skiff.Node) {
	h := http.NotFoundHandler()
	if opsServed() {
		h = opsHandler(n)
	}
	o.h.Store(&h)
}

func (o *opsServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = o.srv.Shutdown(ctx)
}
