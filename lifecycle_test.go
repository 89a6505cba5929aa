package skiff_test

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/skiffkv/skiff"
)

func TestCloseStopsGoroutinesAndReleasesPort(t *testing.T) {
	before := runtime.NumGoroutine()
	cfg := testConfig(t.TempDir())
	cfg.BindAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	for round := 0; round < 3; round++ {
		n, err := skiff.Open(testCtx(t), cfg)
		if err != nil {
			t.Fatalf("Open round %d: %v", round, err)
		}
		if _, err := n.Put(testCtx(t), "k", []byte("v")); err != nil {
			t.Fatalf("Put round %d: %v", round, err)
		}
		if _, err := n.Get(testCtx(t), "k"); err != nil {
			t.Fatalf("Get round %d: %v", round, err)
		}
		if err := n.Close(); err != nil {
			t.Fatalf("Close round %d: %v", round, err)
		}
		// The port is free again at once.
		l, err := net.Listen("tcp", cfg.BindAddr)
		if err != nil {
			t.Fatalf("port %s still in use after Close: %v", cfg.BindAddr, err)
		}
		l.Close()
	}
	eventually(t, 5*time.Second, func() error {
		if now := runtime.NumGoroutine(); now > before {
			buf := make([]byte, 1<<16)
			return fmt.Errorf("%d goroutines after Close, %d before:\n%s", now, before, buf[:runtime.Stack(buf, true)])
		}
		return nil
	})
}

func TestInvalidConfig(t *testing.T) {
	base := testConfig(t.TempDir())
	cases := []struct {
		name   string
		mutate func(*skiff.Config)
	}{
		{"no dir", func(c *skiff.Config) { c.Dir = "" }},
		{"no bind address", func(c *skiff.Config) { c.BindAddr = "" }},
		{"unknown log store", func(c *skiff.Config) { c.LogStore = "leveldb" }},
		{"bad ID", func(c *skiff.Config) { c.ID = "has space" }},
		{"join and initial cluster", func(c *skiff.Config) {
			c.Join = []string{"a:1"}
			c.InitialCluster = []skiff.Peer{{ID: "x", Address: "a:1"}}
		}},
		{"lease above heartbeat", func(c *skiff.Config) { c.LeaderLeaseTimeout = 2 * c.HeartbeatTimeout }},
		{"negative MaxWatches", func(c *skiff.Config) { c.MaxWatches = -1 }},
		{"wildcard without advertise", func(c *skiff.Config) { c.BindAddr = "0.0.0.0:0" }},
		{"initial cluster without self", func(c *skiff.Config) {
			c.ID = "me"
			c.InitialCluster = []skiff.Peer{{ID: "other", Address: "127.0.0.1:1"}}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			cfg.Dir = t.TempDir()
			tc.mutate(&cfg)
			n, err := skiff.Open(testCtx(t), cfg)
			if err == nil {
				n.Close()
			}
			if !errors.Is(err, skiff.ErrConfig) {
				t.Fatalf("Open: err = %v, want ErrConfig", err)
			}
		})
	}
	// A dir remembers its node ID.
	cfg := base
	cfg.ID = "alpha"
	n := openNode(t, cfg)
	n.Close()
	cfg.ID = "beta"
	if _, err := skiff.Open(testCtx(t), cfg); !errors.Is(err, skiff.ErrConfig) {
		t.Fatalf("Open with another ID: err = %v, want ErrConfig", err)
	}
}
