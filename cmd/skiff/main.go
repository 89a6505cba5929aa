// Command skiff runs a skiff node (serve), a local three-node cluster for
// development (dev), and talks to a cluster over the network: put, get,
// del, ls, children, prefixes, watch, members, add-voter, add-nonvoter,
// remove, transfer-leader, status, backup and restore; inspect reads a
// backup file or a stopped node's data dir.
//
//	go install github.com/skiffkv/skiff/cmd/skiff@latest
//	skiff dev                                   # three nodes on 127.0.0.1:7401-7403
//	skiff --endpoints 127.0.0.1:7401 put greeting hello
//	skiff --endpoints 127.0.0.1:7401 get greeting
//
// Run "skiff help" for the verbs, their flags and the exit codes. All of
// the command is in Run, which the tests call in-process; main only
// connects it to the process.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// The first SIGINT or SIGTERM ends ctx, which every verb treats as a
	// request to stop cleanly (serve hands leadership over first). Then
	// the signals are let go, so that a second one kills the process the
	// usual way when a clean stop takes too long.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	os.Exit(Run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}
