package process

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A child process is this test binary run again with roleEnv naming its
// role and specEnv the JSON file that configures it. It talks to the test
// in lines on its standard output that start with linePrefix, and takes
// commands as lines on its standard input.
const (
	roleEnv    = "SKIFF_FAULTS_ROLE"
	specEnv    = "SKIFF_FAULTS_SPEC"
	linePrefix = "skiff-faults "
)

// message is one line a child sent: its kind and the rest of the line.
type message struct {
	kind, body string
}

// proc is one running child process, seen from the test.
type proc struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	msgs    chan message  // the child's protocol lines, in order
	done    chan struct{} // closed once the process has been reaped
	waitErr error         // cmd.Wait's result, set before done closes
	exitMsg string        // the body of an "exit" message; read after done
}

// startProc starts the test binary in role with spec, inside network
// namespace ns when it is not empty. The child's standard error and any
// output that is not protocol goes to logPath, which is appended to, so a
// node's log survives its restarts.
func startProc(t testing.TB, name, ns, role string, spec any, specPath, logPath string) *proc {
	t.Helper()
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(specPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// This very binary, even if a rebuild has replaced the file since it
	// started. -test.run=^$: should the role not be picked up, run no test.
	args := []string{fmt.Sprintf("/proc/%d/exe", os.Getpid()), "-test.run=^$"}
	if ns != "" {
		args = append([]string{"ip", "netns", "exec", ns}, args...)
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, logPath: logPath, msgs: make(chan message, 4096), done: make(chan struct{})}
	p.cmd = exec.Command(args[0], args[1:]...)
	p.cmd.Env = append(os.Environ(), roleEnv+"="+role, specEnv+"="+specPath)
	p.cmd.Stderr = logf
	// "ip netns exec" execs the binary in place, so the pid is the child's
	// own and signals reach it; Pdeathsig kills it should this test binary
	// die without cleaning up.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	go p.read(out, logf)
	return p
}

// read sorts the child's output into protocol messages and log lines,
// then reaps the child. Messages are never dropped: a child that writes
// faster than the test reads waits.
func (p *proc) read(out io.Reader, logf *os.File) {
	lines := bufio.NewScanner(out)
	lines.Buffer(make([]byte, 64<<10), 16<<20)
	for lines.Scan() {
		rest, ok := strings.CutPrefix(lines.Text(), linePrefix)
		if !ok {
			fmt.Fprintln(logf, lines.Text())
			continue
		}
		kind, body, _ := strings.Cut(rest, " ")
		if kind == "exit" {
			p.exitMsg = body
		}
		p.msgs <- message{kind, body}
	}
	p.waitErr = p.cmd.Wait()
	logf.Close()
	close(p.done)
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process; one that has ended is left alone.
func (p *proc) signal(sig syscall.Signal) {
	if !p.exited() {
		_ = p.cmd.Process.Signal(sig)
	}
}

// kill ends the process with SIGKILL (which also ends a stopped one) and
// waits until it has been reaped.
func (p *proc) kill(t testing.TB) {
	t.Helper()
	p.signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s (pid %d) did not exit within 10s of SIGKILL", p.name, p.cmd.Process.Pid)
	}
}

// send writes one command line to the child.
func (p *proc) send(t testing.TB, command string) {
	t.Helper()
	if _, err := fmt.Fprintln(p.stdin, command); err != nil {
		t.Fatalf("%s: send %q: %v", p.name, command, err)
	}
}

// expect returns the next message of one of kinds, skipping others, or
// an error once the process has exited or timeout has passed.
func (p *proc) expect(timeout time.Duration, kinds ...string) (message, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case m := <-p.msgs:
			if slices.Contains(kinds, m.kind) {
				return m, nil
			}
		case <-p.done:
			// Messages sent just before the exit are still queued.
			select {
			case m := <-p.msgs:
				if slices.Contains(kinds, m.kind) {
					return m, nil
				}
				continue
			default:
			}
			return message{}, fmt.Errorf("%s exited (%v) before it sent %q; log: %s", p.name, p.waitErr, kinds, p.logPath)
		case <-timer.C:
			return message{}, fmt.Errorf("%s sent no %q within %v; log: %s", p.name, kinds, timeout, p.logPath)
		}
	}
}

// drain drops the messages queued so far: answers to requests that timed
// out must not answer the next one.
func (p *proc) drain() {
	for {
		select {
		case <-p.msgs:
		default:
			return
		}
	}
}

// emitMu keeps a child's messages whole: a line longer than a pipe's
// atomic write could otherwise interleave with another.
var emitMu sync.Mutex

// emit writes one protocol message from a child to the test.
func emit(kind string, body any) {
	b, err := json.Marshal(body)
	if err != nil {
		panic(err) // the bodies are plain structs
	}
	emitMu.Lock()
	defer emitMu.Unlock()
	fmt.Printf("%s%s %s\n", linePrefix, kind, b)
}

// readSpec decodes the spec file a child was started with.
func readSpec(v any) error {
	b, err := os.ReadFile(os.Getenv(specEnv))
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// tail returns the last n lines of the file at path, for failure
// messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
