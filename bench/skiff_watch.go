//go:build skiffwatch

package main

import (
	"context"
	"time"

	"github.com/skiffkv/skiff"
)

// skiffWatchAvailable reports whether this build drives skiff's Watch API.
const skiffWatchAvailable = true

// skiffWatch watches prefix through the network client and hands the
// value of every put to onPut, on one goroutine per watcher. The watch
// workload only puts, with values of at least 8 bytes; anything shorter
// (a delete) is skipped.
func skiffWatch(ctx context.Context, cl *skiff.Client, prefix string, onPut func([]byte)) (func(), error) {
	ctx, cancel := context.WithCancel(ctx)
	w, err := cl.Watch(ctx, prefix)
	if err != nil {
		cancel()
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.Events() {
			if len(ev.Value) >= 8 {
				onPut(ev.Value)
			}
		}
	}()
	return func() {
		cancel()
		w.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
	}, nil
}
