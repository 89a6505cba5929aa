// Package process is the process tier of skiff's fault suite: every node
// is a separate OS process, and so is the client that drives the
// workload. The package holds only tests.
//
// # Topology
//
// Where the test may make network namespaces (root, the ip command, and
// "ip netns add" allowed), TestNetnsFaults builds a hub namespace with a
// bridge and joins one namespace per node, and one for the client, to it
// with a veth pair each; every endpoint has an address of its own on a
// private /24. Nothing is added to the namespace the test runs in. Each
// node is the test binary re-executed with "ip netns exec", opening a
// skiff node with InitialCluster naming every node and a ClusterSecret
// (a node on a non-loopback address refuses to run unauthenticated). The
// client is the test binary too, in its own namespace: it dials every
// node with skiff.Dial, runs faults.Workload, and writes its history as
// JSON lines to a file the test reads. Everything is removed by
// t.Cleanup; namespaces left by a test binary that was killed are removed
// by the next run.
//
// Where namespaces are not permitted, TestNetnsFaults skips and says why,
// and TestLoopbackFaults still runs the faults that need no network on
// 127.0.0.1 ports.
//
// # Faults
//
// Each seeded run picks one fault class, a log store (boltdb or wal) and
// a cluster size (3 or 5; 1 where a class makes sense on one node) from
// its seed, and injects that fault again and again while the workload
// runs, healing after each:
//
//	kill-leader, kill-random     SIGKILL of the leader or of a random minority, restarted
//	stop-leader, stop-random     SIGSTOP, then SIGCONT: a frozen process (a GC pause, a hung disk)
//	kill-all                     SIGKILL of every node at once, then all restarted
//	damage                       one killed node's files damaged (a flipped byte in an applied
//	                             entry or in the snapshot, a truncated raft.db or WAL segment):
//	                             Open must fail with ErrCorrupt naming the file; it stays down
//	partition-leader             blackhole routes between the leader and its peers
//	partition-minority           the same between a random minority and the majority
//	partition-client             the same between the client and a majority
//	partition-majority           the nodes split into groups none of which is a majority
//	one-way                      packets from the leader to one follower dropped, or the reverse
//	blackhole-leader, -random    a node's veth taken down: every packet dropped, no RST
//
// The partitions and blackholes need namespaces. Consecutive seeds go
// through every class, then every store, then every size.
//
// # Checks
//
// After the faults heal: a write succeeds within 10 s; the final value of
// every key, read linearizably, is explained by the acknowledged writes;
// reads saw only values that were written and not refused; every live
// replica holds the same keys at the same applied index. The whole
// history, ending with that final read, then goes through the checker the
// in-process tier uses: faults.CheckLinearizable over the model of the
// revisioned KV (a write of unknown outcome never returns), and
// faults.LostWrites; a violation, a search that times out, or a lost
// acknowledged write fails the run. TestHistoryCheck shows that doctored
// histories fail this path.
//
// # Running
//
//	go test ./faults/process                  # a few seeded runs per tier
//	go test ./faults/process -run NetnsFaults -faults.runs=78 -timeout=0 -v  # every class, store, size
//	go test ./faults/process -run NetnsFaults -faults.seed=N -v   # one run again
//	go test ./faults/process -run FailoverMeasurement -faults.measure -v
//
// -faults.class runs one class, -faults.duration sets how long faults are
// injected per run, -faults.keep keeps every run's logs and data,
// -faults.stats=FILE appends one JSON line of figures per run to FILE.
//
// -short skips the tier. A failing run prints its seed, the command that
// reproduces it, and where the nodes' logs and data are kept.
package process
