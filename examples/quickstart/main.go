// Command quickstart runs one embedded skiff node and walks through the KV
// API: writes under two namespaces, conditional writes, prefix listings,
// a delete, and a restart that shows the data survived on disk.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/skiffkv/skiff"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run() error {
	dir, err := os.MkdirTemp("", "skiff-quickstart-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	node, err := open(ctx, dir)
	if err != nil {
		return err
	}
	defer func() { node.Close() }() // Close is idempotent

	// A watch on the users subtree sees every change below it, in order.
	watch, err := node.Watch(ctx, "users")
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	defer watch.Close()

	// Plain writes under two namespaces, plus a top-level key.
	for _, kv := range []struct{ key, value string }{
		{"users/alice", "admin"},
		{"users/bob", "viewer"},
		{"usersx/mallory", "not a user"},
		{"config/theme", "dark"},
		{"greeting", "hello"},
	} {
		rev, err := node.Put(ctx, kv.key, []byte(kv.value))
		if err != nil {
			return fmt.Errorf("put %s: %w", kv.key, err)
		}
		fmt.Printf("put    %-16s = %-12q revision %d\n", kv.key, kv.value, rev)
	}

	alice, err := node.Get(ctx, "users/alice")
	if err != nil {
		return fmt.Errorf("get: %w", err)
	}
	fmt.Printf("get    users/alice      = %q (version %d, modified at revision %d)\n",
		alice.Value, alice.Version, alice.ModRevision)

	// Create writes only when the key is absent.
	if _, err := node.Create(ctx, "users/carol", []byte("editor")); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	fmt.Println("create users/carol: ok")
	_, err = node.Create(ctx, "users/carol", []byte("admin"))
	if !errors.Is(err, skiff.ErrExists) {
		return fmt.Errorf("second create: got %v, want ErrExists", err)
	}
	fmt.Println("create users/carol again: ErrExists, as expected")

	// CompareAndSwap succeeds only against the key's current revision.
	rev, err := node.CompareAndSwap(ctx, "users/alice", []byte("owner"), alice.ModRevision)
	if err != nil {
		return fmt.Errorf("compare-and-swap: %w", err)
	}
	fmt.Printf("cas    users/alice from revision %d: ok, now at revision %d\n", alice.ModRevision, rev)
	_, err = node.CompareAndSwap(ctx, "users/alice", []byte("nobody"), alice.ModRevision)
	if !errors.Is(err, skiff.ErrRevisionMismatch) {
		return fmt.Errorf("stale compare-and-swap: got %v, want ErrRevisionMismatch", err)
	}
	fmt.Printf("cas    users/alice from revision %d again: ErrRevisionMismatch, as expected\n", alice.ModRevision)

	// Prefixes match whole segments: "users" does not reach "usersx/...".
	users, err := listKeys(ctx, node, "users")
	if err != nil {
		return err
	}
	fmt.Printf("list   users   -> %s (usersx/mallory is not below users)\n", strings.Join(users, ", "))

	children, err := node.Children(ctx, "")
	if err != nil {
		return fmt.Errorf("children: %w", err)
	}
	var names []string
	for _, c := range children {
		name := c.Name
		if c.HasChildren {
			name += "/"
		}
		names = append(names, name)
	}
	fmt.Printf("children of the top level -> %s\n", strings.Join(names, ", "))

	prefixes, err := node.Prefixes(ctx)
	if err != nil {
		return fmt.Errorf("prefixes: %w", err)
	}
	fmt.Printf("prefixes -> %s\n", strings.Join(prefixes, ", "))

	if err := node.Delete(ctx, "users/bob"); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if _, err := node.Get(ctx, "users/bob"); !errors.Is(err, skiff.ErrNotFound) {
		return fmt.Errorf("get after delete: got %v, want ErrNotFound", err)
	}
	if err := showWatch(ctx, watch, 5); err != nil {
		return err
	}
	fmt.Println("delete users/bob: gone (ErrNotFound)")

	// A snapshot now means the restart below loads the snapshot and then
	// replays the one write made after it from the Raft log.
	if err := node.Snapshot(); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if _, err := node.Put(ctx, "config/lang", []byte("en")); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	before, err := listKeys(ctx, node, "")
	if err != nil {
		return err
	}
	if err := node.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	fmt.Println("node closed; reopening the same data dir")

	if node, err = open(ctx, dir); err != nil {
		return err
	}
	after, err := listKeys(ctx, node, "")
	if err != nil {
		return err
	}
	if strings.Join(after, ",") != strings.Join(before, ",") {
		return fmt.Errorf("after restart the keys are %v, want %v", after, before)
	}
	kv, err := node.Get(ctx, "users/alice")
	if err != nil {
		return fmt.Errorf("get after restart: %w", err)
	}
	fmt.Printf("after restart: %d keys survived, users/alice = %q\n", len(after), kv.Value)
	return node.Close()
}

// open starts a single-node cluster on dir (or restarts it) and waits
// until the node has elected itself.
func open(ctx context.Context, dir string) (*skiff.Node, error) {
	cfg := skiff.DefaultConfig()
	cfg.Dir = dir
	cfg.BindAddr = "127.0.0.1:0"
	// Short timeouts let a lone node elect itself in well under a second.
	cfg.HeartbeatTimeout = 100 * time.Millisecond
	cfg.ElectionTimeout = 100 * time.Millisecond
	cfg.LeaderLeaseTimeout = 100 * time.Millisecond
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

	node, err := skiff.Open(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	if _, err := node.WaitForLeader(ctx); err != nil {
		node.Close()
		return nil, fmt.Errorf("wait for leader: %w", err)
	}
	return node, nil
}

// listKeys returns the keys below prefix ("" for all).
func listKeys(ctx context.Context, node *skiff.Node, prefix string) ([]string, error) {
	res, err := node.List(ctx, prefix, skiff.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("list %q: %w", prefix, err)
	}
	keys := make([]string, len(res.KVs))
	for i, kv := range res.KVs {
		keys[i] = kv.Key
	}
	return keys, nil
}

// showWatch prints the first n events of a watch: the changes made to
// users/ above (usersx/mallory is not among them).
func showWatch(ctx context.Context, w *skiff.Watcher, n int) error {
	for i := 0; i < n; i++ {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				return fmt.Errorf("watch ended: %w", w.Err())
			}
			fmt.Printf("watch  %-6s %-16s = %-10q revision %d\n", ev.Type, ev.Key, ev.Value, ev.Revision)
		case <-ctx.Done():
			return fmt.Errorf("watch: %w", ctx.Err())
		}
	}
	return nil
}
