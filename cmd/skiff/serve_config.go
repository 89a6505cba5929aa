package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/skiffkv/skiff"
)

// config turns the flags into the node's Config: the fields that need a
// file read or a value parsed. What skiff.Open checks itself (required
// fields, ranges, consistency of the trust settings) is left to it, so
// the rules live in one place; it fails with ErrConfig, exit code 2.
// logger becomes Config.Logger, and also logs certificates that change
// on disk but cannot be loaded.
func (s *serveFlags) config(logger *slog.Logger) (skiff.Config, error) {
	c := s.cfg
	c.Logger = logger
	c.LogStore = skiff.LogStoreKind(s.logStore)
	for _, p := range s.initial {
		id, addr, ok := strings.Cut(p, "=")
		if !ok {
			return c, usagef("--initial-cluster: %q is not ID=host:port", p)
		}
		c.InitialCluster = append(c.InitialCluster, skiff.Peer{ID: id, Address: addr})
	}
	c.AnonymousRole = skiff.Role(s.anonymous)
	names, err := pairs("--client-names", s.clientNames)
	if err != nil {
		return c, err
	}
	for name, role := range names {
		if c.ClientNames == nil {
			c.ClientNames = map[string]skiff.Role{}
		}
		c.ClientNames[name] = skiff.Role(role)
	}
	if c.ClusterSecret, err = secret(s.secret, s.secretFile); err != nil {
		return c, err
	}
	if s.tokensFile != "" {
		if c.ClientTokens, err = readTokens(s.tokensFile); err != nil {
			return c, err
		}
	}
	if c.TLS, err = serverTLS(s, logger); err != nil {
		return c, err
	}
	c.PeerTLS, err = peerTLS(s, logger)
	return c, err
}

// pairs parses NAME=VALUE items.
func pairs(flagName string, items []string) (map[string]string, error) {
	out := map[string]string{}
	for _, it := range items {
		k, v, ok := strings.Cut(it, "=")
		if !ok || k == "" {
			return nil, usagef("%s: %q is not NAME=VALUE", flagName, it)
		}
		out[k] = v
	}
	return out, nil
}

// secret returns the cluster secret from the flag (or its environment
// variable) or from a file, whose trailing newline is not part of it.
func secret(value, file string) (string, error) {
	if file == "" {
		return value, nil
	}
	if value != "" {
		return "", usagef("--cluster-secret and --cluster-secret-file exclude each other")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", usagef("read --cluster-secret-file: %v", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// readTokens reads a tokens file: one "ROLE TOKEN" per line; blank lines
// and lines starting with # are skipped. Roles are checked by Open.
func readTokens(path string) (map[string]skiff.Role, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("read --client-tokens-file: %v", err)
	}
	out := map[string]skiff.Role{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		role, tok, ok := strings.Cut(line, " ")
		tok = strings.TrimSpace(tok)
		if !ok || tok == "" {
			// Never echo the line: it may be a token.
			return nil, usagef("%s:%d: want ROLE TOKEN", path, n)
		}
		out[tok] = skiff.Role(role)
	}
	if err := sc.Err(); err != nil {
		return nil, usagef("read --client-tokens-file: %v", err)
	}
	return out, nil
}

// serverTLS builds the TLS config the node serves its ports with, and
// dials its peers with unless peerTLS gives another. It reads the
// certificate, key and CA again when they change on disk (see
// skiff.ReloadingTLS), so certificates rotate without a restart.
func serverTLS(s *serveFlags, logger *slog.Logger) (*tls.Config, error) {
	if s.tlsCert == "" && s.tlsKey == "" {
		if s.tlsCA != "" || s.tlsClientAuth != "" {
			return nil, usagef("--tls-ca and --tls-client-auth need --tls-cert and --tls-key")
		}
		return nil, nil
	}
	// With --tls-ca, ReloadingTLS requires and verifies client
	// certificates; --tls-client-auth says otherwise.
	cfg, err := reloadingTLS(s.tlsCert, s.tlsKey, s.tlsCA, "--tls-cert", "--tls-key", logger)
	if err != nil || s.tlsClientAuth == "" {
		return cfg, err
	}
	modes := map[string]tls.ClientAuthType{"none": tls.NoClientCert, "request": tls.RequestClientCert,
		"require": tls.RequireAnyClientCert, "verify-if-given": tls.VerifyClientCertIfGiven,
		"require-and-verify": tls.RequireAndVerifyClientCert}
	mode, ok := modes[s.tlsClientAuth]
	if !ok {
		return nil, usagef("--tls-client-auth: unknown mode %q", s.tlsClientAuth)
	}
	cfg.ClientAuth = mode
	return cfg, nil
}

// peerTLS builds the config for dialing peers when it differs from the
// serving one; nil lets skiff dial with --tls-cert and --tls-ca. Like
// serverTLS's, it follows its files as they change.
func peerTLS(s *serveFlags, logger *slog.Logger) (*tls.Config, error) {
	if s.peerCert == "" && s.peerKey == "" && s.peerCA == "" {
		return nil, nil
	}
	cert, key := s.peerCert, s.peerKey
	certFlag, keyFlag := "--peer-tls-cert", "--peer-tls-key"
	if cert == "" && key == "" {
		cert, key = s.tlsCert, s.tlsKey
		certFlag, keyFlag = "--tls-cert", "--tls-key"
	}
	ca := s.peerCA
	if ca == "" {
		ca = s.tlsCA
	}
	return reloadingTLS(cert, key, ca, certFlag, keyFlag, logger)
}

// newLogger builds the process's logger on w.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level: %v", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usagef("--log-format: want text or json, not %q", format)
}
