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

func ExampleDial() {
	// A one-node cluster to talk to. In production the nodes run in other
	// processes and the client only knows their addresses.
	dir, err := os.MkdirTemp("", "skiff-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	cfg := skiff.DefaultConfig()
	cfg.Dir = dir
	cfg.BindAddr = "127.0.0.1:0" // any free port; see node.Addr
	cfg.HeartbeatTimeout = 50 * time.Millisecond
	cfg.ElectionTimeout = 50 * time.Millisecond
	cfg.LeaderLeaseTimeout = 50 * time.Millisecond
	cfg.Logger = slog.New(slog.DiscardHandler)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	node, err := skiff.Open(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer node.Close()
	if _, err := node.WaitForLeader(ctx); err != nil {
		log.Fatal(err)
	}

	// Dial needs one reachable member; more addresses give the client
	// more places to fail over to.
	client, err := skiff.Dial(ctx, []string{node.Addr()})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	for _, name := range []string{"alice", "bob"} {
		if _, err := client.Put(ctx, "users/"+name, []byte("hello, "+name)); err != nil {
			log.Fatal(err)
		}
	}
	if _, err := client.Put(ctx, "users/alice", []byte("hello again, alice")); err != nil {
		log.Fatal(err)
	}

	kv, err := client.Get(ctx, "users/alice")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("get %s = %q (version %d)\n", kv.Key, kv.Value, kv.Version)

	// The client returns the same errors as an embedded node.
	if _, err := client.Get(ctx, "users/carol"); errors.Is(err, skiff.ErrNotFound) {
		fmt.Println("get users/carol: not found")
	}

	res, err := client.List(ctx, "users")
	if err != nil {
		log.Fatal(err)
	}
	for _, kv := range res.KVs {
		fmt.Printf("list %s = %q\n", kv.Key, kv.Value)
	}

	// Typed values work over the client as over a node.
	type Job struct {
		Name     string
		Attempts int
	}
	jobs := skiff.NewTyped[Job](client, nil)
	if _, err := jobs.Put(ctx, "jobs/nightly", Job{Name: "backup", Attempts: 1}); err != nil {
		log.Fatal(err)
	}
	job, _, err := jobs.Get(ctx, "jobs/nightly")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("typed get jobs/nightly = %+v\n", job)
	// Output:
	// get users/alice = "hello again, alice" (version 2)
	// get users/carol: not found
	// list users/alice = "hello again, alice"
	// list users/bob = "hello, bob"
	// typed get jobs/nightly = {Name:backup Attempts:1}
}
