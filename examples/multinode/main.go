// Command multinode runs a three-node skiff cluster as three separate OS
// processes on loopback ports and shows a network client riding through
// a frozen leader and the loss of the next one.
//
//	go run ./examples/multinode
//
// The binary plays two roles. Run without arguments it is the driver: it
// starts its own executable three times in node mode, the second and third
// nodes joining through the first, then dials a client to one follower
// (which learns the other members' addresses from the cluster),
// writes and reads through it, freezes the leader's process with SIGSTOP
// and keeps writing until the others have elected a new leader, resumes
// it, kills the new leader with SIGKILL and keeps writing again, and
// finally stops the other nodes and removes their data.
//
// In node mode it runs one node until SIGTERM, SIGINT or the end of its
// standard input (the driver holds the other end of a pipe, so nodes also
// stop when the driver dies):
//
//	multinode -node -id n1 -dir /tmp/n1 -addr 127.0.0.1:0 [-join ADDR]
//
// A node prints "READY <address>" on standard output once it is a member
// of the cluster; with port 0 the address carries the port it picked. Its
// log (warnings and errors only) goes to standard error. The driver keeps
// the nodes' logs out of the way: it prints them if something fails, or
// as they come with -v. Killing the leader makes the survivors log failed
// heartbeats to it; that is expected.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/skiffkv/skiff"
)

// Raft timing for every node: short, so that failover on loopback takes
// well under a second.
const (
	heartbeatTimeout   = 300 * time.Millisecond
	electionTimeout    = 300 * time.Millisecond
	leaderLeaseTimeout = 200 * time.Millisecond
)

// readyPrefix starts the line a node prints once it serves.
const readyPrefix = "READY "

func main() {
	nodeMode := flag.Bool("node", false, "run one cluster node (started by the driver)")
	id := flag.String("id", "", "node mode: node ID")
	dir := flag.String("dir", "", "node mode: data dir")
	addr := flag.String("addr", "127.0.0.1:0", "node mode: address to listen on (port 0 picks one)")
	join := flag.String("join", "", "node mode: address of a member to join through")
	verbose := flag.Bool("v", false, "driver: show the nodes' logs as they come")
	flag.Parse()

	if *nodeMode {
		if err := runNode(*id, *dir, *addr, *join); err != nil {
			fmt.Fprintf(os.Stderr, "node %s: %v\n", *id, err)
			os.Exit(1)
		}
		return
	}
	if flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "multinode: unexpected arguments:", flag.Args())
		os.Exit(2)
	}
	if err := runDriver(*verbose); err != nil {
		fmt.Fprintln(os.Stderr, "multinode: FAILED:", err)
		os.Exit(1)
	}
}

// ---------------------------------------------------------------------------
// Driver

// child is one node process.
type child struct {
	id   string
	addr string

	cmd   *exec.Cmd
	stdin io.WriteCloser
	log   *lineWriter   // the node's standard error
	ready chan string   // receives the node's address once it serves
	done  chan struct{} // closed when the process has exited
	err   error         // cmd.Wait's result, set before done closes
}

func runDriver(verbose bool) (err error) {
	start := time.Now()
	// Everything, including shutdown, must finish within this.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	base, err := os.MkdirTemp("", "skiff-multinode-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(base) // runs last: after every child has exited

	var children []*child
	defer func() {
		// On every path out: no node outlives the driver.
		for _, c := range children {
			c.kill()
		}
		if err != nil && !verbose {
			for _, c := range children {
				c.log.dump(os.Stderr)
			}
		}
	}()

	// Start the nodes: n1 bootstraps, n2 and n3 join through it.
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("n%d", i)
		join := ""
		if i > 1 {
			join = children[0].addr
		}
		c, err := startChild(ctx, exe, id, filepath.Join(base, id), join, verbose)
		if c != nil {
			children = append(children, c)
		}
		if err != nil {
			return err
		}
		fmt.Printf("started %s: pid %d, %s\n", c.id, c.cmd.Process.Pid, c.addr)
	}
	byID := map[string]*child{}
	var addrs []string
	for _, c := range children {
		byID[c.id] = c
		addrs = append(addrs, c.addr)
	}

	// Find the leader through a client that knows every node, then dial
	// the client used below through one follower only.
	leaderID, err := waitForCluster(ctx, addrs)
	if err != nil {
		return err
	}
	leader := byID[leaderID]
	if leader == nil {
		return fmt.Errorf("leader %q is not one of the started nodes", leaderID)
	}
	var follower *child
	for _, c := range children {
		if c != leader {
			follower = c
			break
		}
	}
	fmt.Printf("cluster ready: leader %s (%s)\n", leader.id, leader.addr)

	client, err := skiff.Dial(ctx, []string{follower.addr}, skiff.WithCallTimeout(5*time.Second))
	if err != nil {
		return fmt.Errorf("dial %s: %w", follower.addr, err)
	}
	defer client.Close()
	fmt.Printf("client dialed follower %s (%s) only\n", follower.id, follower.addr)

	// Ordinary traffic.
	acked := map[string]string{} // writes the cluster acknowledged
	for i := 1; i <= 3; i++ {
		key, val := fmt.Sprintf("demo/before/%d", i), fmt.Sprintf("value %d", i)
		rev, err := client.Put(ctx, key, []byte(val))
		if err != nil {
			return fmt.Errorf("put %s: %w", key, err)
		}
		acked[key] = val
		fmt.Printf("  put %s = %q at revision %d\n", key, val, rev)
	}
	for i := 1; i <= 3; i++ {
		key := fmt.Sprintf("demo/before/%d", i)
		kv, err := client.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("get %s: %w", key, err)
		}
		fmt.Printf("  get %s = %q (revision %d)\n", kv.Key, kv.Value, kv.ModRevision)
	}

	// Freeze the leader, as a GC pause, a hung disk or a paused VM would:
	// its connections stay open but nothing answers. Writes carry on once
	// the others have elected a new leader and the client has given up on
	// the frozen one; then it is resumed and rejoins as a follower.
	unknown := map[string]string{} // writes whose outcome is unknown
	fmt.Printf("freezing leader %s (pid %d) with SIGSTOP\n", leader.id, leader.cmd.Process.Pid)
	if err := leader.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		return fmt.Errorf("stop %s: %w", leader.id, err)
	}
	took, err := writeUntilOK(ctx, client, "frozen", acked, unknown)
	if err != nil {
		return err
	}
	newID, _, err := client.Leader(ctx)
	if err != nil {
		return fmt.Errorf("leader after the freeze: %w", err)
	}
	fmt.Printf("writes carried on %v after the leader froze; new leader %s\n", took.Round(time.Millisecond), newID)
	if err := leader.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		return fmt.Errorf("resume %s: %w", leader.id, err)
	}
	fmt.Printf("resumed %s: it rejoins as a follower\n", leader.id)

	// Kill the new leader without warning, and keep writing until a write
	// succeeds on the next one.
	leader = byID[newID]
	if leader == nil {
		return fmt.Errorf("leader %q is not one of the started nodes", newID)
	}
	fmt.Printf("killing leader %s (pid %d) with SIGKILL\n", leader.id, leader.cmd.Process.Pid)
	if err := leader.cmd.Process.Kill(); err != nil {
		return fmt.Errorf("kill %s: %w", leader.id, err)
	}
	failover, err := writeUntilOK(ctx, client, "failover", acked, unknown)
	if err != nil {
		return err
	}
	newID, newAddr, err := client.Leader(ctx)
	if err != nil {
		return fmt.Errorf("leader after failover: %w", err)
	}
	if newID == leader.id {
		return fmt.Errorf("killed leader %s still reported as leader", leader.id)
	}
	fmt.Printf("failover took %v (leader kill to first successful write); new leader %s (%s)\n",
		failover.Round(time.Millisecond), newID, newAddr)

	// A few more writes on the new leader, then read everything back.
	for i := 1; i <= 3; i++ {
		key, val := fmt.Sprintf("demo/after/%d", i), fmt.Sprintf("value %d", i)
		rev, err := client.Put(ctx, key, []byte(val))
		if err != nil {
			return fmt.Errorf("put %s: %w", key, err)
		}
		acked[key] = val
		fmt.Printf("  put %s = %q at revision %d\n", key, val, rev)
	}
	if err := readBack(ctx, client, acked, unknown); err != nil {
		return err
	}

	// Stop the surviving nodes gracefully.
	client.Close()
	var stopErrs []error
	for _, c := range children {
		if c == leader {
			continue
		}
		if err := c.terminate(10 * time.Second); err != nil {
			stopErrs = append(stopErrs, err)
		} else {
			fmt.Printf("stopped %s\n", c.id)
		}
	}
	<-leader.done // reaped long ago; SIGKILL is not an error here
	if err := errors.Join(stopErrs...); err != nil {
		return err
	}
	fmt.Printf("done in %v\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// writeUntilOK writes keys demo/<label>/NN through client, one after the
// other, until one succeeds, and returns how long that took. Writes whose
// outcome is unknown go to unknown, the one that succeeds to acked.
func writeUntilOK(ctx context.Context, client *skiff.Client, label string, acked, unknown map[string]string) (time.Duration, error) {
	start := time.Now()
	for attempt := 1; ; attempt++ {
		if time.Since(start) > 30*time.Second {
			return 0, fmt.Errorf("%s: no write succeeded within 30s", label)
		}
		if ctx.Err() != nil {
			return 0, fmt.Errorf("%s: %w", label, context.Cause(ctx))
		}
		key, val := fmt.Sprintf("demo/%s/%02d", label, attempt), fmt.Sprintf("attempt %d", attempt)
		wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
		rev, err := client.Put(wctx, key, []byte(val))
		wcancel()
		since := time.Since(start).Round(time.Millisecond)
		switch {
		case err == nil:
			acked[key] = val
			fmt.Printf("  +%v put %s: ok at revision %d\n", since, key, rev)
			return time.Since(start), nil
		case errors.Is(err, skiff.ErrIndeterminate):
			// The write reached a node, which lost the leader before it
			// could answer. It may or may not have been applied; it is
			// not retried, the next write uses a new key.
			unknown[key] = val
			fmt.Printf("  +%v put %s: outcome unknown (ErrIndeterminate); trying the next write\n      %v\n", since, key, err)
			pause(ctx, 50*time.Millisecond)
		default:
			fmt.Printf("  +%v put %s: failed, not applied; trying the next write\n      %v\n", since, key, err)
			pause(ctx, 100*time.Millisecond)
		}
	}
}

// startChild starts one node process and waits until it reports its
// address. On failure it returns the child too (if it was started), so
// the caller's cleanup kills it.
func startChild(ctx context.Context, exe, id, dir, join string, verbose bool) (*child, error) {
	args := []string{"-node", "-id", id, "-dir", dir, "-addr", "127.0.0.1:0"}
	if join != "" {
		args = append(args, "-join", join)
	}
	c := &child{id: id, ready: make(chan string, 1), done: make(chan struct{})}
	c.cmd = exec.Command(exe, args...)
	c.cmd.Stdout = &lineWriter{prefix: "    [" + id + "] ", out: os.Stdout, ready: c.ready}
	c.log = &lineWriter{prefix: "    [" + id + " log] ", keep: 200}
	if verbose {
		c.log.out = os.Stderr
	}
	c.cmd.Stderr = c.log
	c.cmd.WaitDelay = 2 * time.Second // do not wait forever for output after exit
	stdin, err := c.cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	c.stdin = stdin
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", id, err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()

	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	select {
	case c.addr = <-c.ready:
		return c, nil
	case <-c.done:
		return c, fmt.Errorf("node %s exited before it was ready: %v", id, c.err)
	case <-timer.C:
		return c, fmt.Errorf("node %s not ready within 30s", id)
	case <-ctx.Done():
		return c, fmt.Errorf("starting node %s: %w", id, context.Cause(ctx))
	}
}

// kill ends the process at once if it still runs and waits for it to be
// reaped.
func (c *child) kill() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Kill()
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
	}
}

// terminate asks the node to stop (SIGTERM, and its stdin closed) and
// waits for a clean exit, killing it after timeout.
func (c *child) terminate(timeout time.Duration) error {
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		_ = c.stdin.Close() // no signals on this platform; EOF stops it too
	}
	select {
	case <-c.done:
		if c.err != nil {
			return fmt.Errorf("node %s: %w", c.id, c.err)
		}
		return nil
	case <-time.After(timeout):
		c.kill()
		return fmt.Errorf("node %s did not stop within %v; killed", c.id, timeout)
	}
}

// waitForCluster polls until three voters are members and one of them
// leads, and returns the leader's ID.
func waitForCluster(ctx context.Context, addrs []string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	probe, err := skiff.Dial(ctx, addrs)
	if err != nil {
		return "", fmt.Errorf("dial cluster: %w", err)
	}
	defer probe.Close()
	var last error
	for {
		members, err := probe.Members(ctx)
		if err == nil {
			voters, leader := 0, ""
			for _, m := range members {
				if m.Voter {
					voters++
				}
				if m.Leader {
					leader = m.ID
				}
			}
			if voters == len(addrs) && leader != "" {
				fmt.Println("members:")
				for _, m := range members {
					role := "follower"
					if m.Leader {
						role = "leader"
					}
					fmt.Printf("  %s  %s  %s\n", m.ID, m.Address, role)
				}
				return leader, nil
			}
			last = fmt.Errorf("%d voters, leader %q", voters, leader)
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("cluster did not form: %w (last: %v)", context.Cause(ctx), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// readBack lists every key through the client and checks that each
// acknowledged write is there, and reports what became of the writes whose
// outcome was unknown.
func readBack(ctx context.Context, client *skiff.Client, acked, unknown map[string]string) error {
	res, err := client.List(ctx, "demo")
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	fmt.Printf("read back %d keys at revision %d:\n", len(res.KVs), res.Revision)
	got := map[string]string{}
	for _, kv := range res.KVs {
		got[kv.Key] = string(kv.Value)
		note := ""
		if _, ok := unknown[kv.Key]; ok {
			note = "  (outcome was unknown: it was applied)"
		}
		fmt.Printf("  %s = %q%s\n", kv.Key, kv.Value, note)
	}
	var missing []string
	for k, v := range acked {
		if got[k] != v {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("acknowledged writes missing or changed: %v", missing)
	}
	for k := range unknown {
		if _, ok := got[k]; !ok {
			fmt.Printf("  %s absent (outcome was unknown: it was not applied)\n", k)
		}
	}
	fmt.Printf("all %d acknowledged writes present\n", len(acked))
	return nil
}

func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
