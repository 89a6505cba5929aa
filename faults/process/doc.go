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
// Each seeded run picks one fault class (see classes in nemesis_test.go),
// a log store and a cluster size from its seed, then injects that fault
// repeatedly while the workload runs: SIGKILL of the leader or of random
// nodes (restarted afterwards), SIGSTOP/SIGCONT of the leader or of random
// nodes, partitions by blackhole routes inside the namespaces (the leader
// from its peers, a minority from the majority, the client from the
// majority), a host blackholed by taking its veth down, kill -9 of every
// node at once, and damage to one stopped node's files, which must then
// refuse to start with skiff.ErrCorrupt naming the file.
//
// # Checks
//
// After the faults heal: a write succeeds within 10 s; the final value of
// every key, read linearizably, is explained by the acknowledged writes;
// reads saw only values that were written and not refused; every live
// replica holds the same keys at the same applied index. A full
// linearizability check plugs in through checkLinearizable.
//
// # Running
//
//	go test ./faults/process                  # a few seeded runs per tier
//	go test ./faults/process -run NetnsFaults -faults.runs=44 -timeout=0 -v
//	go test ./faults/process -run NetnsFaults -faults.seed=N -v   # one run again
//	go test ./faults/process -run FailoverMeasurement -faults.measure -v
//
// -short skips the tier. A failing run prints its seed, the command that
// reproduces it, and where the nodes' logs and data are kept.
package process
