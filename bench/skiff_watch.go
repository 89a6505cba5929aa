package main

import (
	"context"
	"time"

	"github.com/skiffkv/skiff"
)

// skiffWatch watches prefix through the network client and hands the
// value of every put to onPut, on one goroutine per watcher.
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
			if ev.Type == skiff.EventPut {
				onPut(ev.Value)
			}
		}
	}()
	return func() {
		cancel()
		w.Close()
		// Events is closed when the watch ends; do not hang the run if
		// it is not.
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
	}, nil
}
