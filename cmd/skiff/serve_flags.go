package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/skiffkv/skiff"
)

// serveFlags is everything serve is told: a skiff.Config, filled straight
// from the flags that map onto its fields one to one, and the flags that
// need a step before they become Config fields (files to read, TLS to
// build) or that configure the process rather than the node.
type serveFlags struct {
	cfg skiff.Config

	configFile  string
	logStore    string
	initial     []string // ID=ADDR
	anonymous   string
	clientNames []string // NAME=ROLE

	tlsCert, tlsKey, tlsCA, tlsClientAuth string
	peerCert, peerKey, peerCA             string
	secret, secretFile, tokensFile        string

	logFormat, logLevel string
	metricsAddr         string
	pprof               bool
	shutdownTimeout     time.Duration
}

// defineServeFlags registers serve's flags on fs, with DefaultConfig's
// values as defaults.
func defineServeFlags(fs *flag.FlagSet) *serveFlags {
	s := &serveFlags{cfg: skiff.DefaultConfig()}
	c := &s.cfg
	fs.StringVar(&s.configFile, "config", "", "JSON `file` of flag values, keyed by flag name: {\"dir\": \"/var/lib/skiff\", \"join\": [\"10.0.0.5:7400\"]}")
	fs.StringVar(&c.Dir, "dir", "", "data `dir`: Raft log, snapshots, node ID (required)")
	fs.StringVar(&c.ID, "id", "", "node `ID`; empty: the ID stored in the dir, or a random one")
	fs.StringVar(&c.BindAddr, "bind-addr", "", "`host:port` to listen on for peers (and clients, without --client-bind-addr) (required)")
	fs.StringVar(&c.AdvertiseAddr, "advertise-addr", "", "`host:port` other nodes reach this one at (default: the bound address)")
	fs.Var(listFlag{&c.Join}, "join", "comma-separated `addresses` of members to ask for admission (a fresh dir only)")
	fs.BoolVar(&c.JoinAsNonvoter, "join-as-nonvoter", false, "join as a non-voting member")
	fs.Var(listFlag{&s.initial}, "initial-cluster", "every member of a new cluster, as comma-separated `ID=host:port` (the same on every member)")
	fs.DurationVar(&c.HeartbeatTimeout, "heartbeat-timeout", c.HeartbeatTimeout, "follower wait before an election")
	fs.DurationVar(&c.ElectionTimeout, "election-timeout", c.ElectionTimeout, "candidate wait; at least --heartbeat-timeout")
	fs.DurationVar(&c.LeaderLeaseTimeout, "leader-lease-timeout", c.LeaderLeaseTimeout, "a leader steps down without quorum contact this long; at most --heartbeat-timeout")
	fs.StringVar(&s.logStore, "log-store", "", "`kind` of Raft log for a new dir: boltdb or wal (default: wal, or what the dir holds)")
	fs.Uint64Var(&c.SnapshotThreshold, "snapshot-threshold", c.SnapshotThreshold, "minimum log entries since the last snapshot")
	fs.Float64Var(&c.SnapshotSizeRatio, "snapshot-size-ratio", c.SnapshotSizeRatio, "minimum bytes written since the last snapshot, as a fraction of the state (0: no size rule)")
	fs.Uint64Var(&c.SnapshotMaxEntries, "snapshot-max-entries", c.SnapshotMaxEntries, "entries after which a snapshot is due whatever the size rule says")
	fs.DurationVar(&c.SnapshotInterval, "snapshot-interval", c.SnapshotInterval, "how often the snapshot rules are checked")
	fs.Uint64Var(&c.TrailingLogs, "trailing-logs", c.TrailingLogs, "log entries kept behind a snapshot for lagging followers")
	fs.IntVar(&c.RetainSnapshots, "retain-snapshots", c.RetainSnapshots, "snapshot files kept on disk")
	fs.Var(sizeFlag[int64]{&c.QuotaBytes}, "quota-bytes", "bound on the sum of key and value `size`s (0: none)")
	fs.Var(sizeFlag[int]{&c.MaxKeySize}, "max-key-size", "longest key, at most 64KiB")
	fs.Var(sizeFlag[int]{&c.MaxValueSize}, "max-value-size", "longest value, at most 32MiB")
	fs.IntVar(&c.WatchHistory, "watch-history", c.WatchHistory, "recent changes kept for watches, by count")
	fs.Var(sizeFlag[int64]{&c.WatchHistoryBytes}, "watch-history-bytes", "recent changes kept for watches, by bytes")
	fs.IntVar(&c.MaxWatches, "max-watches", c.MaxWatches, "watches served over the network at once")
	defineTrustFlags(fs, s)
	fs.StringVar(&c.ClientBindAddr, "client-bind-addr", "", "serve clients on a port of their own (`host:port`); --bind-addr then serves peers only")
	fs.StringVar(&c.ClientAdvertiseAddr, "client-advertise-addr", "", "`host:port` clients reach the client port at (default: the bound address)")
	fs.StringVar(&s.logFormat, "log-format", "text", "log `format` on stderr: text or json")
	fs.StringVar(&s.logLevel, "log-level", "info", "least `level` logged: debug, info, warn or error")
	fs.StringVar(&s.metricsAddr, "metrics-addr", "", "`host:port` of an HTTP server for /metrics (Prometheus), /healthz and /readyz; no credentials asked, so keep it where operators alone reach")
	fs.BoolVar(&s.pprof, "pprof", false, "also serve Go's profiles under /debug/pprof/ on --metrics-addr")
	fs.DurationVar(&s.shutdownTimeout, "shutdown-timeout", 10*time.Second, "on SIGTERM or SIGINT, how long handing leadership over and closing may take")
	return s
}

func defineTrustFlags(fs *flag.FlagSet, s *serveFlags) {
	c := &s.cfg
	fs.StringVar(&s.tlsCert, "tls-cert", "", "PEM `file` of the node's certificate: serve TLS (also its client certificate towards peers); this and the other TLS files are read again when they change, for rotation without a restart")
	fs.StringVar(&s.tlsKey, "tls-key", "", "PEM `file` of the certificate's key")
	fs.StringVar(&s.tlsCA, "tls-ca", "", "PEM `file` of the CA that signs peers' and clients' certificates")
	fs.StringVar(&s.tlsClientAuth, "tls-client-auth", "", "client certificates: none, request, require, verify-if-given or require-and-verify (default: require-and-verify with --tls-ca, else none)")
	fs.StringVar(&s.peerCert, "peer-tls-cert", "", "PEM `file` of the certificate used to dial peers (default: --tls-cert)")
	fs.StringVar(&s.peerKey, "peer-tls-key", "", "PEM `file` of its key")
	fs.StringVar(&s.peerCA, "peer-tls-ca", "", "PEM `file` of the CA that signs peers' certificates (default: --tls-ca)")
	fs.StringVar(&s.secret, "cluster-secret", "", "what peers prove membership with; 16 bytes or more, the same on every member (prefer --cluster-secret-file or the environment: a flag shows in ps)")
	fs.StringVar(&s.secretFile, "cluster-secret-file", "", "`file` holding the cluster secret")
	fs.Var(listFlag{&c.PeerNames}, "peer-names", "comma-separated certificate `names` of peers (*.domain matches one label), with mutual TLS")
	fs.StringVar(&s.tokensFile, "client-tokens-file", "", "`file` of client tokens, one \"ROLE TOKEN\" per line (roles: readonly, readwrite, admin; # comments)")
	fs.Var(listFlag{&s.clientNames}, "client-names", "comma-separated `NAME=ROLE` pairs: roles of clients by certificate name")
	fs.StringVar(&s.anonymous, "anonymous-role", "", "`role` of clients without credentials once peers are authenticated (default: none)")
	fs.BoolVar(&c.InsecureOpen, "insecure-open", false, "serve a non-loopback address without authenticating peers: anyone reaching it can do anything")
}

// applyEnvAndFile sets every flag the command line left alone from its
// environment variable or, failing that, from the config file, which
// *file names once the environment has been read (SKIFF_CONFIG).
func applyEnvAndFile(fs *flag.FlagSet, configFile *string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	if err := setFromEnv(fs, names, set); err != nil {
		return err
	}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true }) // now with the environment's
	file := *configFile
	if file == "" {
		return nil
	}
	values, err := readConfigFile(file)
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch {
		case k == "config":
			return usagef("%s: a config file cannot name another", file)
		case fs.Lookup(k) == nil:
			return usagef("%s: unknown key %q (keys are serve's flag names)", file, k)
		case set[k]:
			continue
		}
		if err := fs.Set(k, values[k]); err != nil {
			return usagef("%s: %s: %v", file, k, err)
		}
	}
	return nil
}

// readConfigFile reads a JSON object of flag values. A value is a string,
// a number, a boolean, a list (joined with commas, as the flag takes it)
// or, for the NAME=VALUE lists, an object.
func readConfigFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("read config file: %v", err)
	}
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, usagef("%s: not a JSON object: %v", path, err)
	}
	out := map[string]string{}
	for k, v := range raw {
		s, err := flagText(v)
		if err != nil {
			return nil, usagef("%s: %s: %v", path, k, err)
		}
		out[k] = s
	}
	return out, nil
}

// flagText converts a JSON value to the text its flag parses.
func flagText(v json.RawMessage) (string, error) {
	var x any
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	if err := dec.Decode(&x); err != nil {
		return "", err
	}
	switch x := x.(type) {
	case string:
		return x, nil
	case json.Number, bool:
		return fmt.Sprint(x), nil
	case []any:
		var parts []string
		for _, e := range x {
			s, ok := e.(string)
			if !ok || strings.Contains(s, ",") {
				return "", fmt.Errorf("a list holds strings without commas")
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ","), nil
	case map[string]any:
		var parts []string
		for name, val := range x {
			s, ok := val.(string)
			if !ok || strings.ContainsAny(name+s, ",=") {
				return "", fmt.Errorf("an object maps names to strings, without commas or '='")
			}
			parts = append(parts, name+"="+s)
		}
		slices.Sort(parts)
		return strings.Join(parts, ","), nil
	}
	return "", fmt.Errorf("unsupported value %s", v)
}
