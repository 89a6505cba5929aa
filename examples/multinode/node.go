package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/skiffkv/skiff"
)

func runNode(id, dir, addr, join string) error {
	if id == "" || dir == "" {
		return errors.New("-id and -dir are required")
	}
	// Stop on SIGTERM or SIGINT, and when standard input ends: the driver
	// keeps a pipe to it open for as long as it lives.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel(errors.New("standard input closed"))
	}()

	cfg := skiff.DefaultConfig()
	cfg.ID = id
	cfg.Dir = dir
	cfg.BindAddr = addr
	cfg.HeartbeatTimeout = heartbeatTimeout
	cfg.ElectionTimeout = electionTimeout
	cfg.LeaderLeaseTimeout = leaderLeaseTimeout
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if join != "" {
		cfg.Join = []string{join}
	}

	openCtx, openCancel := context.WithTimeout(ctx, 30*time.Second)
	defer openCancel()
	node, err := skiff.Open(openCtx, cfg)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer node.Close()
	if join == "" {
		// A new one-node cluster: be its leader before anyone joins.
		if _, err := node.WaitForLeader(openCtx); err != nil {
			return err
		}
	}
	fmt.Printf("%s%s\n", readyPrefix, node.Addr())

	<-ctx.Done()
	why := "signal"
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		why = err.Error()
	}
	fmt.Printf("stopping (%s)\n", why)
	// The nodes still running log failed heartbeats to this one; that is
	// expected while the cluster shuts down.
	if err := node.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	fmt.Println("closed")
	return nil
}
