//go:build !skiffwatch

package main

import (
	"context"

	"github.com/skiffkv/skiff"
)

// skiffWatchAvailable reports whether this build drives skiff's Watch API.
// Build with -tags skiffwatch once the library has Client.Watch.
const skiffWatchAvailable = false

func skiffWatch(context.Context, *skiff.Client, string, func([]byte)) (func(), error) {
	return nil, errNoWatch
}
