package skiff_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/skiffkv/skiff"
)

// exampleConfig is a Config for a one-node cluster in dir with short
// timeouts, so that the node elects itself within a fraction of a second.
func exampleConfig(dir string) skiff.Config {
	cfg := skiff.DefaultConfig()
	cfg.Dir = dir
	cfg.BindAddr = "127.0.0.1:0"
	cfg.HeartbeatTimeout = 50 * time.Millisecond
	cfg.ElectionTimeout = 50 * time.Millisecond
	cfg.LeaderLeaseTimeout = 50 * time.Millisecond
	cfg.Logger = slog.New(slog.DiscardHandler)
	return cfg
}

// exampleNode opens a one-node cluster in a temporary dir and waits for it
// to lead. The returned function closes the node and removes the dir.
func exampleNode() (*skiff.Node, func()) {
	dir, err := os.MkdirTemp("", "skiff-example-")
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	node, err := skiff.Open(ctx, exampleConfig(dir))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := node.WaitForLeader(ctx); err != nil {
		log.Fatal(err)
	}
	return node, func() {
		node.Close()
		os.RemoveAll(dir)
	}
}

func ExampleOpen() {
	dir, err := os.MkdirTemp("", "skiff-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	cfg := skiff.DefaultConfig()
	cfg.Dir = dir
	cfg.BindAddr = "127.0.0.1:0"
	cfg.HeartbeatTimeout = 50 * time.Millisecond
	cfg.ElectionTimeout = 50 * time.Millisecond
	cfg.LeaderLeaseTimeout = 50 * time.Millisecond
	cfg.Logger = slog.New(slog.DiscardHandler)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	node, err := skiff.Open(ctx, cfg) // a fresh dir without Join: a new one-node cluster
	if err != nil {
		log.Fatal(err)
	}
	defer node.Close()
	if _, err := node.WaitForLeader(ctx); err != nil {
		log.Fatal(err)
	}

	if _, err := node.Put(ctx, "greeting", []byte("hello, skiff")); err != nil {
		log.Fatal(err)
	}
	kv, err := node.Get(ctx, "greeting")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s = %s (version %d)\n", kv.Key, kv.Value, kv.Version)
	// Output: greeting = hello, skiff (version 1)
}

func ExampleNode_List() {
	node, done := exampleNode()
	defer done()
	ctx := context.Background()

	for _, k := range []string{"users/bob", "users/alice", "users", "usersx/mallory"} {
		if _, err := node.Put(ctx, k, []byte("v:"+k)); err != nil {
			log.Fatal(err)
		}
	}
	// "users" means the subtree users/...: neither the key "users" itself
	// nor usersx/mallory is listed.
	res, err := node.List(ctx, "users")
	if err != nil {
		log.Fatal(err)
	}
	for _, kv := range res.KVs {
		fmt.Printf("%s = %s\n", kv.Key, kv.Value)
	}

	// Large subtrees are read in pages.
	page, err := node.List(ctx, "users", skiff.WithLimit(1), skiff.WithKeysOnly())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("first page:", page.KVs[0].Key, "more:", page.More)
	page, err = node.List(ctx, "users", skiff.WithLimit(1), skiff.WithAfter(page.KVs[0].Key))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("next page:", page.KVs[0].Key, "more:", page.More)
	// Output:
	// users/alice = v:users/alice
	// users/bob = v:users/bob
	// first page: users/alice more: true
	// next page: users/bob more: false
}

func ExampleNode_CompareAndSwap() {
	node, done := exampleNode()
	defer done()
	ctx := context.Background()

	rev, err := node.Put(ctx, "counter", []byte("1"))
	if err != nil {
		log.Fatal(err)
	}
	// Succeeds: nobody wrote counter since rev.
	next, err := node.CompareAndSwap(ctx, "counter", []byte("2"), rev)
	fmt.Println("first swap:", err, "revision grew:", next > rev)

	// Fails: counter is no longer at rev.
	_, err = node.CompareAndSwap(ctx, "counter", []byte("3"), rev)
	fmt.Println("second swap is a mismatch:", errors.Is(err, skiff.ErrRevisionMismatch))

	kv, err := node.Get(ctx, "counter")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("counter = %s (version %d)\n", kv.Value, kv.Version)
	// Output:
	// first swap: <nil> revision grew: true
	// second swap is a mismatch: true
	// counter = 2 (version 2)
}

func ExampleNode_Create() {
	node, done := exampleNode()
	defer done()
	ctx := context.Background()

	_, err := node.Create(ctx, "locks/report", []byte("worker-1"))
	fmt.Println("worker-1:", err)
	_, err = node.Create(ctx, "locks/report", []byte("worker-2"))
	fmt.Println("worker-2 finds it taken:", errors.Is(err, skiff.ErrExists))
	// Output:
	// worker-1: <nil>
	// worker-2 finds it taken: true
}

func ExampleNode_Children() {
	node, done := exampleNode()
	defer done()
	ctx := context.Background()

	for _, k := range []string{"app/db", "app/db/primary", "app/db/replica", "app/name"} {
		if _, err := node.Put(ctx, k, []byte("x")); err != nil {
			log.Fatal(err)
		}
	}
	children, err := node.Children(ctx, "app")
	if err != nil {
		log.Fatal(err)
	}
	for _, c := range children {
		fmt.Printf("%s key=%t children=%t\n", c.Name, c.IsKey, c.HasChildren)
	}
	// Output:
	// db key=true children=true
	// name key=true children=false
}

func ExampleNode_Prefixes() {
	node, done := exampleNode()
	defer done()
	ctx := context.Background()

	for _, k := range []string{"users/alice", "users/bob", "config/theme", "greeting"} {
		if _, err := node.Put(ctx, k, []byte("x")); err != nil {
			log.Fatal(err)
		}
	}
	// greeting has a single segment, so it is not a namespace.
	prefixes, err := node.Prefixes(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(prefixes)
	// Output: [config users]
}

func ExampleNode_Delete() {
	node, done := exampleNode()
	defer done()
	ctx := context.Background()

	if _, err := node.Put(ctx, "carts/42", []byte("token")); err != nil {
		log.Fatal(err)
	}
	if err := node.Delete(ctx, "carts/42"); err != nil {
		log.Fatal(err)
	}
	_, err := node.Get(ctx, "carts/42")
	fmt.Println("after delete, not found:", errors.Is(err, skiff.ErrNotFound))
	// Deleting a key that does not exist is not an error.
	fmt.Println("delete again:", node.Delete(ctx, "carts/42"))
	// Output:
	// after delete, not found: true
	// delete again: <nil>
}
