// Command cluster runs a three-node skiff cluster inside one process on
// loopback ports. The first node bootstraps the cluster, the other two
// join through it; a write sent to a follower is then read back,
// linearizably, on another node.
//
//	go run ./examples/cluster
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/skiffkv/skiff"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
}

func run() error {
	base, err := os.MkdirTemp("", "skiff-cluster-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(base)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Errors go to stderr while the cluster runs. During shutdown the last
	// nodes standing log failed heartbeats to the ones already closed;
	// that is expected, so shutdown raises the level past them.
	var level slog.LevelVar
	level.Set(slog.LevelError)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: &level}))

	var nodes []*skiff.Node
	defer func() {
		level.Set(slog.LevelError + 4)
		for _, n := range nodes {
			n.Close()
		}
	}()
	for i := 1; i <= 3; i++ {
		cfg := skiff.DefaultConfig()
		cfg.ID = fmt.Sprintf("node-%d", i)
		cfg.Dir = filepath.Join(base, cfg.ID)
		cfg.BindAddr = "127.0.0.1:0"
		cfg.HeartbeatTimeout = 300 * time.Millisecond
		cfg.ElectionTimeout = 300 * time.Millisecond
		cfg.LeaderLeaseTimeout = 200 * time.Millisecond
		cfg.Logger = logger
		if i > 1 {
			// Any member will do; followers forward the join to the leader.
			cfg.Join = []string{nodes[0].Addr()}
		}
		n, err := skiff.Open(ctx, cfg)
		if err != nil {
			return fmt.Errorf("open %s: %w", cfg.ID, err)
		}
		nodes = append(nodes, n)
		if i == 1 {
			// The first node bootstraps a one-node cluster; let it elect
			// itself before the others ask it to add them.
			if _, err := n.WaitForLeader(ctx); err != nil {
				return fmt.Errorf("%s: %w", cfg.ID, err)
			}
		}
		fmt.Printf("started %s on %s\n", n.ID(), n.Addr())
	}

	if err := waitForMembers(ctx, nodes); err != nil {
		return err
	}

	// Write through a follower (it forwards to the leader) and read the
	// key on a different node. The read is linearizable: it sees every
	// write acknowledged before it began.
	writer, reader := pick(nodes)
	rev, err := writer.Put(ctx, "config/greeting", []byte("hello from "+writer.ID()))
	if err != nil {
		return fmt.Errorf("put on %s: %w", writer.ID(), err)
	}
	fmt.Printf("put config/greeting on follower %s: revision %d\n", writer.ID(), rev)
	kv, err := reader.Get(ctx, "config/greeting")
	if err != nil {
		return fmt.Errorf("get on %s: %w", reader.ID(), err)
	}
	if kv.ModRevision != rev {
		return fmt.Errorf("get on %s: revision %d, want %d", reader.ID(), kv.ModRevision, rev)
	}
	fmt.Printf("get config/greeting on %s: %q (revision %d)\n", reader.ID(), kv.Value, kv.ModRevision)

	members, err := nodes[0].Members(ctx)
	if err != nil {
		return fmt.Errorf("members: %w", err)
	}
	fmt.Println("members:")
	for _, m := range members {
		role := "follower"
		if m.Leader {
			role = "leader"
		}
		if !m.Voter {
			role += ", non-voter"
		}
		fmt.Printf("  %s  %s  %s\n", m.ID, m.Address, role)
	}

	level.Set(slog.LevelError + 4)
	for i := len(nodes) - 1; i >= 0; i-- {
		if err := nodes[i].Close(); err != nil {
			return fmt.Errorf("close %s: %w", nodes[i].ID(), err)
		}
	}
	fmt.Println("all nodes closed")
	return nil
}

// waitForMembers polls until every node lists all nodes as voters and
// knows the same leader.
func waitForMembers(ctx context.Context, nodes []*skiff.Node) error {
	for {
		if settled(ctx, nodes) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster did not settle: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func settled(ctx context.Context, nodes []*skiff.Node) bool {
	leader, _ := nodes[0].Leader()
	if leader == "" {
		return false
	}
	for _, n := range nodes {
		if id, _ := n.Leader(); id != leader {
			return false
		}
		ms, err := n.Members(ctx)
		if err != nil || len(ms) != len(nodes) {
			return false
		}
		for _, m := range ms {
			if !m.Voter {
				return false
			}
		}
	}
	return true
}

// pick returns a follower to write on and another node to read from,
// preferring the other follower, so that both calls go through the
// leader.
func pick(nodes []*skiff.Node) (writer, reader *skiff.Node) {
	var followers []*skiff.Node
	var leader *skiff.Node
	for _, n := range nodes {
		if n.IsLeader() {
			leader = n
		} else {
			followers = append(followers, n)
		}
	}
	writer = followers[0]
	reader = leader
	if len(followers) > 1 {
		reader = followers[1]
	}
	if reader == nil {
		reader = nodes[0]
		if reader == writer {
			reader = nodes[1]
		}
	}
	return writer, reader
}
