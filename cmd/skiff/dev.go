package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/skiffkv/skiff"
)

// devNodes is the size of the dev cluster: the smallest that survives the
// loss of a node, which is what people try first.
const devNodes = 3

// runDev runs a three-node cluster in this process on loopback until ctx
// ends, and prints how to talk to it. The nodes are open (no secret):
// loopback only.
func runDev(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	dir := fs.String("dir", "", "keep the nodes' data in `DIR` (default: a temporary dir, removed on exit)")
	port := fs.Int("port", 7401, "first of three consecutive loopback `port`s (0: any free ones)")
	logLevel := fs.String("log-level", "error", "least `level` of the nodes' logs on stderr")
	fs.BoolVar(&e.common.json, "json", e.common.json, "print the endpoints as one JSON object")
	args, err := e.parseVerb(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("dev", args, 0, 0, "no arguments"); err != nil {
		return err
	}
	if *port < 0 || *port > 65535-devNodes {
		return usagef("--port %d is out of range", *port)
	}
	logger, err := newLogger(e.stderr, "text", *logLevel)
	if err != nil {
		return err
	}
	base, temp := *dir, *dir == ""
	if temp {
		if base, err = os.MkdirTemp("", "skiff-dev-"); err != nil {
			return err
		}
		defer os.RemoveAll(base)
	}
	nodes, err := startDev(ctx, base, *port, logger)
	defer func() {
		for _, n := range nodes {
			n.Close()
		}
	}()
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.ClientAddr())
	}
	if err := e.out.emit(struct {
		Endpoints []string `json:"endpoints"`
		Dir       string   `json:"dir"`
		Temporary bool     `json:"temporary"`
	}{addrs, base, temp}, func(w io.Writer) { printDevHelp(w, addrs, base, temp) }); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// startDev opens the nodes, all listed up front (InitialCluster), and
// waits for a leader. The listeners are opened first, so that with port 0
// every node's address is known before any node starts. On failure it
// returns the nodes it opened, for the caller to close.
func startDev(ctx context.Context, base string, port int, logger *slog.Logger) ([]*skiff.Node, error) {
	var lis []net.Listener
	var peers []skiff.Peer
	for i := range devNodes {
		addr := "127.0.0.1:0"
		if port != 0 {
			addr = fmt.Sprintf("127.0.0.1:%d", port+i)
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range lis {
				l.Close()
			}
			return nil, fmt.Errorf("listen: %w (choose other ports with --port)", err)
		}
		lis = append(lis, l)
		peers = append(peers, skiff.Peer{ID: fmt.Sprintf("dev-%d", i+1), Address: l.Addr().String()})
	}
	var nodes []*skiff.Node
	for i, p := range peers {
		cfg := skiff.DefaultConfig()
		cfg.Dir = filepath.Join(base, p.ID)
		cfg.ID = p.ID
		cfg.Listener, cfg.AdvertiseAddr = lis[i], p.Address
		cfg.InitialCluster = peers
		cfg.Logger = logger.With("node", p.ID)
		n, err := skiff.Open(ctx, cfg)
		if err != nil {
			for _, l := range lis[i:] {
				l.Close()
			}
			return nodes, err
		}
		nodes = append(nodes, n)
	}
	if _, err := nodes[0].WaitForLeader(ctx); err != nil {
		return nodes, err
	}
	return nodes, nil
}

// printDevHelp says how to reach the dev cluster: every command it
// prints runs as printed (TestDev runs them).
func printDevHelp(w io.Writer, addrs []string, dir string, temp bool) {
	eps := strings.Join(addrs, ",")
	fmt.Fprintf(w, "skiff dev: a %d-node cluster on %s\n", len(addrs), strings.Join(addrs, ", "))
	keep := "kept after exit"
	if temp {
		keep = "removed on exit; keep it with --dir"
	}
	fmt.Fprintf(w, "data: %s (%s)\n\n", dir, keep)
	fmt.Fprintf(w, "Talk to it from another terminal:\n")
	fmt.Fprintf(w, "  export SKIFF_ENDPOINTS=%s\n", eps)
	fmt.Fprintf(w, "  skiff put greeting hello\n  skiff get greeting\n  skiff ls --json\n  skiff members\n  skiff status\n")
	fmt.Fprintf(w, "  skiff watch greeting    # prints each change until Ctrl-C\n\n")
	fmt.Fprintf(w, "Without skiff installed (go install github.com/skiffkv/skiff/cmd/skiff@latest),\n")
	fmt.Fprintf(w, "from a checkout of skiff:\n")
	fmt.Fprintf(w, "  go run ./cmd/skiff --endpoints %s put greeting hello\n\n", eps)
	quoted := make([]string, len(addrs))
	for i, a := range addrs {
		quoted[i] = fmt.Sprintf("%q", a)
	}
	fmt.Fprintf(w, "From Go:\n  client, err := skiff.Dial(ctx, []string{%s})\n\n", strings.Join(quoted, ", "))
	fmt.Fprintf(w, "Press Ctrl-C to stop.\n")
}
