package faults

import (
	"context"
	"fmt"
	"time"

	"github.com/skiffkv/skiff"
	"github.com/skiffkv/skiff/skifftest"
)

// nodeKV calls whatever node runs as index i of a cluster, so that a
// workload client keeps working across a restart of its node. While the
// node is stopped, calls fail with ErrUnavailable before anything is
// sent, which the history records as a failure that changed nothing;
// they fail after a short pause, as a refused connection would, so that
// a workload client does not spin.
type nodeKV struct {
	c *skifftest.Cluster
	i int
}

var _ skiff.KV = nodeKV{}

func (k nodeKV) node(ctx context.Context) (*skiff.Node, error) {
	if n := k.c.Node(k.i); n != nil {
		return n, nil
	}
	t := time.NewTimer(20 * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	return nil, fmt.Errorf("%w: node %d is stopped", skiff.ErrUnavailable, k.i)
}

func (k nodeKV) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	n, err := k.node(ctx)
	if err != nil {
		return 0, err
	}
	return n.Put(ctx, key, value)
}

func (k nodeKV) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	n, err := k.node(ctx)
	if err != nil {
		return 0, err
	}
	return n.Create(ctx, key, value)
}

func (k nodeKV) CompareAndSwap(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	n, err := k.node(ctx)
	if err != nil {
		return 0, err
	}
	return n.CompareAndSwap(ctx, key, value, rev)
}

func (k nodeKV) Get(ctx context.Context, key string, opts ...skiff.ReadOption) (*skiff.KeyValue, error) {
	n, err := k.node(ctx)
	if err != nil {
		return nil, err
	}
	return n.Get(ctx, key, opts...)
}

func (k nodeKV) Delete(ctx context.Context, key string) error {
	n, err := k.node(ctx)
	if err != nil {
		return err
	}
	return n.Delete(ctx, key)
}

func (k nodeKV) DeleteIf(ctx context.Context, key string, rev uint64) error {
	n, err := k.node(ctx)
	if err != nil {
		return err
	}
	return n.DeleteIf(ctx, key, rev)
}

func (k nodeKV) List(ctx context.Context, prefix string, opts ...skiff.ReadOption) (*skiff.ListResult, error) {
	n, err := k.node(ctx)
	if err != nil {
		return nil, err
	}
	return n.List(ctx, prefix, opts...)
}

func (k nodeKV) Children(ctx context.Context, prefix string, opts ...skiff.ReadOption) ([]skiff.Child, error) {
	n, err := k.node(ctx)
	if err != nil {
		return nil, err
	}
	return n.Children(ctx, prefix, opts...)
}

func (k nodeKV) Prefixes(ctx context.Context, opts ...skiff.ReadOption) ([]string, error) {
	n, err := k.node(ctx)
	if err != nil {
		return nil, err
	}
	return n.Prefixes(ctx, opts...)
}

func (k nodeKV) Watch(ctx context.Context, prefix string, opts ...skiff.WatchOption) (*skiff.Watcher, error) {
	n, err := k.node(ctx)
	if err != nil {
		return nil, err
	}
	return n.Watch(ctx, prefix, opts...)
}
