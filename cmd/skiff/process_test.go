package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// proc is a skiff process started by a test: the test binary running
// main (see TestMain).
type proc struct {
	cmd  *exec.Cmd
	out  *syncBuffer // stdout and stderr
	done chan struct{}
	err  error // Wait's result, once done is closed
}

func startProc(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: exec.Command(exe, args...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = append(append(os.Environ(), "SKIFF_TEST_AS_CMD=1"), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("output of %v:\n%s", args, p.out.String())
		}
	})
	return p
}

// stop sends sig and returns the exit code.
func (p *proc) stop(t *testing.T, sig os.Signal) int {
	t.Helper()
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%v did not exit after %v", p.cmd.Args, sig)
	}
	return p.cmd.ProcessState.ExitCode()
}

// Three `skiff serve` processes on loopback, driven through the command:
// put, watch (a process of its own, interrupted), backup, SIGKILL of the
// leader, restore on the survivors, the killed node back with the
// restored state (its /readyz and /metrics say so), clean stops (the
// last node standing has no leader and is not ready), and inspect of a
// stopped node's dir.
func TestThreeServeProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three node processes; skipped with -short")
	}
	base := t.TempDir()
	ids := []string{"n1", "n2", "n3"}
	addrs := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	ops := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	var initial []string
	for i, id := range ids {
		initial = append(initial, id+"="+addrs[i])
	}
	serve := func(i int) *proc {
		// The member list comes from the environment, as a deployment
		// would pass it; the rest from flags.
		return startProc(t, []string{"SKIFF_INITIAL_CLUSTER=" + strings.Join(initial, ",")}, "serve",
			"--dir", filepath.Join(base, ids[i]), "--id", ids[i], "--bind-addr", addrs[i], "--metrics-addr", ops[i], "--log-format", "json",
			"--heartbeat-timeout", "300ms", "--election-timeout", "300ms", "--leader-lease-timeout", "200ms")
	}
	nodes := []*proc{serve(0), serve(1), serve(2)}
	t.Setenv("SKIFF_ENDPOINTS", strings.Join(addrs, ","))
	leader := waitForLeader(t, "")

	watchWhilePutting(t, "app", 5)

	backup := filepath.Join(t.TempDir(), "backup.bin")
	mustRun(t, exitOK, "backup", backup)
	killed := indexOf(ids, leader)
	nodes[killed].stop(t, syscall.SIGKILL)
	eventually(t, 20*time.Second, func() error {
		if r := runCLI(t, "put", "after/kill", "x", "--timeout", "3s"); r.code != exitOK {
			return fmt.Errorf("%v", r)
		}
		return nil
	})
	waitForLeader(t, leader)
	mustRun(t, exitOK, "restore", backup)
	checkRestored(t)

	// The killed node comes back on its dir and receives the restored state.
	nodes[killed] = serve(killed)
	checkNodeRestored(t, ids[killed], addrs[killed], ops[killed])
	stopAll(t, nodes, ids, ops)
	r := mustRun(t, exitOK, "inspect", filepath.Join(base, ids[killed]), "--json")
	if d := decodeJSON[dirJSON](t, r); d.InUse || d.Checksum != "ok" || d.Log == nil {
		t.Fatalf("inspect of a stopped node's dir = %+v", d)
	}
}

// checkRestored checks that the cluster holds what watchWhilePutting
// wrote before the backup, and nothing written after it.
func checkRestored(t *testing.T) {
	t.Helper()
	if r := mustRun(t, exitOK, "ls", "--keys-only"); r.stdout != "app/00\napp/01\napp/02\napp/03\napp/04\n" {
		t.Fatalf("after restore, ls printed %q", r.stdout)
	}
	if r := mustRun(t, exitOK, "get", "app/03"); r.stdout != "value 3\n" {
		t.Fatalf("after restore, get app/03 printed %q", r.stdout)
	}
}

// checkNodeRestored waits until node id, back after the restore, holds
// the restored state, is ready, and says so in its metrics.
func checkNodeRestored(t *testing.T, id, addr, ops string) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		r := runCLI(t, "status", addr, "--json", "--timeout", "2s")
		if r.code != exitOK || !strings.Contains(r.stdout, `"keys":5,`) {
			return fmt.Errorf("%v", r)
		}
		return nil
	})
	waitReady(t, ops)
	m := scrapeMetrics(t, ops)
	if keys := m.Must(t, "skiff_state_keys", "node", id); keys != 5 {
		t.Fatalf("skiff_state_keys of %s = %v, want the restored 5", id, keys)
	}
	if v := m.Must(t, "raft_state_follower"); v < 1 {
		t.Fatalf("raft_state_follower of %s = %v, want at least 1", id, v)
	}
}

// watchWhilePutting runs a watch as a process of its own, puts n keys
// below prefix, sees them arrive one JSON object each, and interrupts the
// watch, which exits 0.
func watchWhilePutting(t *testing.T, prefix string, n int) {
	t.Helper()
	watch := startProc(t, nil, "watch", prefix, "--json", "--initial")
	eventually(t, 10*time.Second, func() error {
		if !strings.Contains(watch.out.String(), `"type":"synced"`) {
			return errNotYet(watch.out.String())
		}
		return nil
	})
	putKeys(t, prefix, n)
	eventually(t, 10*time.Second, func() error {
		if strings.Count(watch.out.String(), `"type":"put"`) != n {
			return errNotYet(watch.out.String())
		}
		return nil
	})
	if code := watch.stop(t, os.Interrupt); code != exitOK {
		t.Fatalf("interrupted watch exited %d:\n%s", code, watch.out.String())
	}
}

// waitForLeader waits until the cluster names a leader other than not,
// and returns its ID.
func waitForLeader(t *testing.T, not string) string {
	t.Helper()
	var leader string
	eventually(t, 30*time.Second, func() error {
		r := runCLI(t, "members", "--json", "--timeout", "2s")
		if r.code != exitOK {
			return fmt.Errorf("%v", r)
		}
		var ms membersJSON
		if err := jsonUnmarshal(r.stdout, &ms); err != nil {
			return err
		}
		if leader = leaderOf(ms); leader == "" || leader == not {
			return fmt.Errorf("leader %q", leader)
		}
		return nil
	})
	return leader
}

// stopAll stops the nodes with SIGTERM, the leader first: it hands
// leadership over before it goes, and every node exits 0. The last one
// standing has lost its leader and, before it is stopped, must say on
// /readyz that it is not ready.
func stopAll(t *testing.T, nodes []*proc, ids, ops []string) {
	t.Helper()
	first := indexOf(ids, waitForLeader(t, ""))
	order := []int{first}
	for i := range nodes {
		if i != first {
			order = append(order, i)
		}
	}
	for n, i := range order {
		if n == len(order)-1 {
			eventually(t, 30*time.Second, func() error {
				code, body, err := tryGet("http://" + ops[i] + "/readyz")
				if err == nil && (code != http.StatusServiceUnavailable || !strings.Contains(body, "not ready")) {
					err = fmt.Errorf("/readyz = %d %q", code, body)
				}
				return err
			})
		}
		if code := nodes[i].stop(t, syscall.SIGTERM); code != exitOK {
			t.Fatalf("%s exited %d after SIGTERM:\n%s", ids[i], code, nodes[i].out.String())
		}
	}
	if !strings.Contains(nodes[first].out.String(), "leadership handed over") {
		t.Errorf("the leader stopped without handing leadership over:\n%s", nodes[first].out.String())
	}
}

func indexOf(ids []string, id string) int {
	for i, x := range ids {
		if x == id {
			return i
		}
	}
	return -1
}
