package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/skiffkv/skiff"
)

// runServe runs one node until ctx ends (SIGTERM or SIGINT), then hands
// leadership over if it leads and closes the node, so that the cluster
// elects no new leader by timeout and loses no time.
func runServe(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	sf, cfg, err := serveConfig(fs, args, e.stderr)
	if err != nil {
		return err
	}
	logger := cfg.Logger
	var ops *opsServer
	if sf.metricsAddr != "" {
		if ops, err = startOps(sf.metricsAddr, logger); err != nil {
			return err
		}
		defer ops.close()
		// Raft's metrics are counted from here, so that the elections and
		// log replay of opening the node are in them.
		skiff.RaftCollector()
	} else if sf.pprof {
		return usagef("--pprof needs --metrics-addr")
	}
	node, err := skiff.Open(ctx, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while joining: nothing to hand over
		}
		return fmt.Errorf("serve: %w", err)
	}
	if ops != nil {
		ops.attach(node, skiff.HTTPOptions{Pprof: sf.pprof})
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
// Config, whose Logger writes to stderr.
func serveConfig(fs *flag.FlagSet, args []string, stderr io.Writer) (*serveFlags, skiff.Config, error) {
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
	logger, err := newLogger(stderr, sf.logFormat, sf.logLevel)
	if err != nil {
		return nil, skiff.Config{}, err
	}
	cfg, err := sf.config(logger)
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
