package process

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Namespaces are named nsPrefix<pid of the test binary>-<endpoint>, so
// that a later run can tell its own from those a killed run left behind.
// The subnet exists only inside these namespaces.
const (
	nsPrefix = "skiff-faults-"
	subnet   = "10.254.77."
)

// endpoint is one namespace on the bridge: a node or the client.
type endpoint struct {
	name string // "n0", "client"
	ns   string
	ip   string
	port string // its veth's other end, a port of the bridge in the hub
}

// topology is a hub namespace holding a bridge, and one namespace per
// endpoint joined to it by a veth pair. It also keeps the faults it has
// injected, so that heal can undo them all.
type topology struct {
	hub    string
	eps    map[string]*endpoint
	routes [][2]string // blackhole routes: namespace, destination
	down   []string    // bridge ports taken down
}

// newTopology makes the hub and one endpoint per name, or skips the test
// when network namespaces are not permitted here. Everything it makes is
// removed in t.Cleanup.
func newTopology(t testing.TB, names []string) *topology {
	t.Helper()
	requireNetns(t)
	removeStale(t)
	prefix := fmt.Sprintf("%s%d-", nsPrefix, os.Getpid())
	top := &topology{hub: prefix + "hub", eps: map[string]*endpoint{}}
	var made []string
	t.Cleanup(func() {
		for _, ns := range made {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", ns, err, out)
			}
		}
	})
	ipCmd(t, "netns", "add", top.hub)
	made = append(made, top.hub)
	ipCmd(t, "-n", top.hub, "link", "set", "lo", "up")
	ipCmd(t, "-n", top.hub, "link", "add", "br0", "type", "bridge")
	ipCmd(t, "-n", top.hub, "link", "set", "br0", "up")
	for i, name := range names {
		e := &endpoint{name: name, ns: prefix + name, ip: subnet + strconv.Itoa(10+i), port: "p" + strconv.Itoa(i)}
		ipCmd(t, "netns", "add", e.ns)
		made = append(made, e.ns)
		ipCmd(t, "-n", top.hub, "link", "add", e.port, "type", "veth", "peer", "name", "eth0", "netns", e.ns)
		ipCmd(t, "-n", top.hub, "link", "set", e.port, "master", "br0", "up")
		ipCmd(t, "-n", e.ns, "addr", "add", e.ip+"/24", "dev", "eth0")
		ipCmd(t, "-n", e.ns, "link", "set", "eth0", "up")
		ipCmd(t, "-n", e.ns, "link", "set", "lo", "up")
		top.eps[name] = e
	}
	return top
}

// requireNetns skips the test unless it may make network namespaces.
func requireNetns(t testing.TB) {
	t.Helper()
	if why := netnsProblem(); why != "" {
		t.Skip("network namespaces not permitted here, so the process tier's network faults do not run " +
			"(TestLoopbackFaults covers the rest): " + why)
	}
}

// netnsProblem says why this test may not make network namespaces, or ""
// when it may.
func netnsProblem() string {
	if os.Geteuid() != 0 {
		return "not root"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "no ip command: " + err.Error()
	}
	probe := fmt.Sprintf("%s%d-probe", nsPrefix, os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		return fmt.Sprintf("ip netns add refused: %v: %s", err, strings.TrimSpace(string(out)))
	}
	if out, err := exec.Command("ip", "netns", "del", probe).CombinedOutput(); err != nil {
		return fmt.Sprintf("ip netns del %s: %v: %s", probe, err, strings.TrimSpace(string(out)))
	}
	return ""
}

// removeStale deletes namespaces left by test binaries that no longer
// run (killed by a timeout before their cleanup ran).
func removeStale(t testing.TB) {
	t.Helper()
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return // none made yet
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), nsPrefix)
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid == os.Getpid() || alive(pid) {
			continue
		}
		if out, err := exec.Command("ip", "netns", "del", e.Name()).CombinedOutput(); err != nil {
			t.Logf("removing stale namespace %s: %v: %s", e.Name(), err, out)
		}
	}
}

// alive reports whether process pid runs: it exists and is not a
// zombie (a killed test binary that nobody has reaped yet).
func alive(pid int) bool {
	if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // cannot tell; leave its namespaces alone
	}
	// pid (comm) state ...: comm may hold spaces, so look after its ')'.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// ipCmd runs the ip command and fails the test if it fails.
func ipCmd(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// cut drops all traffic between every endpoint in as and every one in
// bs, with blackhole routes on both sides: a sender's packets are
// discarded before they leave, so nothing reaches the other side and no
// RST comes back (new connections fail at once with EINVAL).
func (top *topology) cut(t testing.TB, as, bs []*endpoint) {
	t.Helper()
	for _, a := range as {
		for _, b := range bs {
			for _, r := range [][2]string{{a.ns, b.ip}, {b.ns, a.ip}} {
				if slices.Contains(top.routes, r) {
					continue // the kernel refuses the same route twice
				}
				ipCmd(t, "-n", r[0], "route", "add", "blackhole", r[1]+"/32")
				top.routes = append(top.routes, r)
			}
		}
	}
}

// cutOneWay drops every packet from one endpoint to another with a
// blackhole route on the sender's side; packets the other way still
// arrive. TCP needs both ways, so a connection from "from" fails at once,
// while one from "to" hangs unanswered (its replies are dropped).
func (top *topology) cutOneWay(t testing.TB, from, to *endpoint) {
	t.Helper()
	r := [2]string{from.ns, to.ip}
	if slices.Contains(top.routes, r) {
		return
	}
	ipCmd(t, "-n", r[0], "route", "add", "blackhole", r[1]+"/32")
	top.routes = append(top.routes, r)
}

// isolate takes e's port on the bridge down: every packet to or from e
// is dropped in silence, while e's own link stays configured.
func (top *topology) isolate(t testing.TB, e *endpoint) {
	t.Helper()
	ipCmd(t, "-n", top.hub, "link", "set", e.port, "down")
	top.down = append(top.down, e.port)
}

// heal undoes every cut and isolation.
func (top *topology) heal(t testing.TB) {
	t.Helper()
	for _, r := range top.routes {
		ipCmd(t, "-n", r[0], "route", "del", "blackhole", r[1]+"/32")
	}
	for _, port := range top.down {
		ipCmd(t, "-n", top.hub, "link", "set", port, "up")
	}
	top.routes, top.down = nil, nil
}
