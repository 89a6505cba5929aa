package skiff_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skiffkv/skiff"
	"github.com/skiffkv/skiff/internal/testkit"
	"github.com/skiffkv/skiff/skifftest"
)

// A leader cut off from its peers, but not from the client, used to keep
// every client write: each failed with ErrIndeterminate or ErrNoLeader at
// its deadline, for as long as the cut lasted, although the other nodes
// had elected a new leader. Now the cut-off node answers ErrNoLeader
// promptly once it steps down, the client tries the others, and writes
// carry on.
func TestClientLeavesACutOffLeader(t *testing.T) {
	c := skifftest.NewCluster(t, 3, nil)
	cl := c.Client(nil)
	ctx := testCtx(t)
	if _, err := cl.Put(ctx, "before", []byte("x")); err != nil {
		t.Fatal(err)
	}
	old := c.WaitForLeader()
	c.Partition(old) // the client still reaches every node
	start := time.Now()
	var errs []error
	for i := 0; ; i++ {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_, err := cl.Put(cctx, fmt.Sprintf("after/%d", i), []byte("x"))
		cancel()
		if err == nil {
			break
		}
		errs = append(errs, err)
		if len(errs) == 4 {
			t.Fatalf("no write succeeded in %v after the leader was cut off: %v", time.Since(start), errs)
		}
	}
	t.Logf("first write after the cut: %v, %d failed before it", time.Since(start), len(errs))
	nl := newLeader(t, c, old)
	_, addr, err := cl.Leader(ctx)
	if err != nil || addr != c.Addr(nl) {
		t.Fatalf("Client.Leader() = %q, %v, want node %d (%s)", addr, err, nl, c.Addr(nl))
	}
}

// Watcher.Revision used to count events queued for the caller but not
// taken, so closing a watch and resuming it from Revision skipped them.
func TestWatcherRevisionCountsOnlyWhatWasReceived(t *testing.T) {
	c := skifftest.NewCluster(t, 1, nil)
	n := c.Node(0)
	ctx := testCtx(t)
	type watcher interface {
		Revision() uint64
		Close()
	}
	plain := func(from uint64) (watcher, func() string, error) {
		opts := []skiff.WatchOption{}
		if from > 0 {
			opts = append(opts, skiff.WatchFrom(from))
		}
		w, err := n.Watch(ctx, "q", opts...)
		if err != nil {
			return nil, nil, err
		}
		return w, func() string { return next(t, w).Key }, nil
	}
	typed := func(from uint64) (watcher, func() string, error) {
		opts := []skiff.WatchOption{}
		if from > 0 {
			opts = append(opts, skiff.WatchFrom(from))
		}
		w, err := skiff.NewTyped[string](n, nil).Watch(ctx, "q", opts...)
		if err != nil {
			return nil, nil, err
		}
		return w, func() string {
			select {
			case ev := <-w.Events():
				return ev.Key
			case <-time.After(10 * time.Second):
				t.Fatal("no typed event within 10s")
				return ""
			}
		}, nil
	}
	for name, open := range map[string]func(uint64) (watcher, func() string, error){"Watcher": plain, "TypedWatcher": typed} {
		t.Run(name, func(t *testing.T) {
			w, recv, err := open(0)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]bool{}
			for i := 0; i < 10; i++ {
				k := fmt.Sprintf("q/%s/%d", name, i)
				if _, err := n.Put(ctx, k, []byte(`"v"`)); err != nil {
					t.Fatal(err)
				}
				want[k] = true
			}
			delete(want, recv())
			w.Close()
			w2, recv2, err := open(w.Revision())
			if err != nil {
				t.Fatal(err)
			}
			defer w2.Close()
			for len(want) > 0 {
				k := recv2()
				if !want[k] {
					t.Fatalf("resumed watch delivered %s, which is not one of the %d missing", k, len(want))
				}
				delete(want, k)
			}
		})
	}
}

// A watch whose position moved past a change outside its prefix, less
// than a second after it last reported, never reported it: on a quiet
// cluster its Revision stayed behind for ever.
func TestQuietWatchReportsProgress(t *testing.T) {
	c := skifftest.NewCluster(t, 3, nil)
	ctx := testCtx(t)
	for name, kv := range map[string]skiff.KV{"node": c.Follower(), "client": c.Client(nil)} {
		t.Run(name, func(t *testing.T) {
			w, err := kv.Watch(ctx, "a-"+name)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			if _, err := c.Leader().Put(ctx, "a-"+name+"/1", []byte("x")); err != nil {
				t.Fatal(err)
			}
			next(t, w)
			rev, err := c.Leader().Put(ctx, "b-"+name+"/1", []byte("x"))
			if err != nil {
				t.Fatal(err)
			}
			eventually(t, 5*time.Second, func() error {
				if got := w.Revision(); got < rev {
					return fmt.Errorf("Revision() = %d, want %d once progress is reported", got, rev)
				}
				return nil
			})
		})
	}
}

// A linearizable read on a node that was closing used to fail with gRPC's
// "the client connection is closing" (context.Canceled), not ErrClosed:
// the read was waiting on the leader when the node closed its connections.
func TestReadOnClosingNodeIsErrClosed(t *testing.T) {
	var hole blackhole
	nodes, _ := staticCluster(t, 3, func(i int, cfg *skiff.Config) {
		if i == 2 {
			cfg.Dialer = hole.dial
		}
	})
	ctx := testCtx(t)
	if _, err := nodes[0].WaitForLeader(ctx); err != nil {
		t.Fatal(err)
	}
	if nodes[2].IsLeader() {
		if err := nodes[2].TransferLeadership(ctx, ""); err != nil {
			t.Fatal(err)
		}
	}
	f := nodes[2]
	if _, err := f.Get(ctx, "k"); !errors.Is(err, skiff.ErrNotFound) {
		t.Fatalf("Get before the fault: %v", err) // its connection to the leader is up
	}
	hole.on.Store(true) // what it sends to the leader is lost from now on
	errs := make(chan error, 4)
	for i := 0; i < cap(errs); i++ {
		go func() {
			_, err := f.Get(testCtx(t), "k")
			errs <- err
		}()
	}
	eventually(t, 5*time.Second, func() error {
		if hole.swallowed.Load() == 0 {
			return errors.New("no read has reached the leader's connection yet")
		}
		return nil
	})
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < cap(errs); i++ {
		if err := <-errs; !errors.Is(err, skiff.ErrClosed) {
			t.Fatalf("Get on a closing node: %v, want ErrClosed", err)
		}
	}
}

// blackhole dials TCP connections that, once on is set, swallow what is
// written to them and never answer, as a peer that froze does.
type blackhole struct {
	on        atomic.Bool
	swallowed atomic.Int64 // writes lost since on was set
}

func (b *blackhole) dial(ctx context.Context, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &holeConn{Conn: c, b: b, closed: make(chan struct{})}, nil
}

type holeConn struct {
	net.Conn
	b      *blackhole
	once   sync.Once
	closed chan struct{}
}

func (c *holeConn) Write(p []byte) (int, error) {
	if c.b.on.Load() {
		c.b.swallowed.Add(1)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *holeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.b.on.Load() {
		<-c.closed
		return 0, net.ErrClosed
	}
	return n, err
}

func (c *holeConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// Open with a Join list that reaches nobody, and a context without a
// deadline, used to block for ever.
func TestOpenWithAnUnreachableJoinFails(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the default 10 s deadline")
	}
	cfg := testConfig(t.TempDir())
	dead := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg.Join = []string{dead}
	done := make(chan error, 1)
	go func() {
		_, err := skiff.Open(context.Background(), cfg)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, skiff.ErrTimeout) || !strings.Contains(err.Error(), dead) {
			t.Fatalf("Open = %v, want ErrTimeout naming %s", err, dead)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Open with an unreachable Join list still blocks after 20 s")
	}
}

// Dial used to fail within milliseconds when no node was up yet, so a
// service started together with its cluster crash-looped. It now waits
// for a node, up to the dial timeout.
func TestDialWaitsForTheCluster(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.BindAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	dialed := make(chan error, 1)
	go func() {
		cl, err := skiff.Dial(context.Background(), []string{cfg.BindAddr}, skiff.WithDialTimeout(20*time.Second))
		if err == nil {
			_, err = cl.Put(testCtx(t), "k", []byte("v"))
			cl.Close()
		}
		dialed <- err
	}()
	select {
	case err := <-dialed:
		t.Fatalf("Dial returned before any node was up: %v", err)
	case <-time.After(300 * time.Millisecond): // what a cluster's start takes, about
	}
	openNode(t, cfg)
	if err := <-dialed; err != nil {
		t.Fatalf("Dial, then Put, once the node was up: %v", err)
	}
}

// A member restarted on another port (a BindAddr with port 0, say) used
// to be unreachable for good: the leader kept sending to the old address.
// It now warns, and the cluster records its new address.
func TestMemberRestartedOnAnotherPort(t *testing.T) {
	nodes, cfgs := staticCluster(t, 3)
	ctx := testCtx(t)
	moved := follower(t, nodes)
	if err := nodes[moved].Close(); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	cfg := cfgs[moved]
	cfg.BindAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	n, err := skiff.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	other := nodes[(moved+1)%3]
	eventually(t, 10*time.Second, func() error {
		if m := members(t, other)[n.ID()]; m.Address != cfg.BindAddr {
			return fmt.Errorf("the cluster has %s at %s, want %s", n.ID(), m.Address, cfg.BindAddr)
		}
		return nil
	})
	want := putAll(t, other, "moved", 5)
	eventually(t, 10*time.Second, func() error { return hasAll(n, want) })
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "fixed port") {
		t.Fatalf("no warning about the changed address:\n%s", logs.String())
	}
}

type syncBuffer = testkit.SyncBuffer
