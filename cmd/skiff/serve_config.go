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
func (s *serveFlags) config() (skiff.Config, error) {
	c := s.cfg
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
	if c.TLS, err = serverTLS(s.tlsCert, s.tlsKey, s.tlsCA, s.tlsClientAuth); err != nil {
		return c, err
	}
	c.PeerTLS, err = peerTLS(s)
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

// serverTLS builds the TLS config the node serves its ports with.
func serverTLS(cert, key, ca, clientAuth string) (*tls.Config, error) {
	if cert == "" && key == "" {
		if ca != "" || clientAuth != "" {
			return nil, usagef("--tls-ca and --tls-client-auth need --tls-cert and --tls-key")
		}
		return nil, nil
	}
	pair, err := loadPair(cert, key, "--tls-cert", "--tls-key")
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	if ca != "" {
		if cfg.ClientCAs, err = loadPool(ca); err != nil {
			return nil, err
		}
		cfg.RootCAs = cfg.ClientCAs // the node dials peers with this config too
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	if clientAuth != "" {
		modes := map[string]tls.ClientAuthType{"none": tls.NoClientCert, "request": tls.RequestClientCert,
			"require": tls.RequireAnyClientCert, "verify-if-given": tls.VerifyClientCertIfGiven,
			"require-and-verify": tls.RequireAndVerifyClientCert}
		mode, ok := modes[clientAuth]
		if !ok {
			return nil, usagef("--tls-client-auth: unknown mode %q", clientAuth)
		}
		cfg.ClientAuth = mode
	}
	return cfg, nil
}

// peerTLS builds the config for dialing peers when it differs from the
// serving one; nil lets skiff dial with --tls-cert and --tls-ca.
func peerTLS(s *serveFlags) (*tls.Config, error) {
	if s.peerCert == "" && s.peerKey == "" && s.peerCA == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	cert, key := s.peerCert, s.peerKey
	if cert == "" && key == "" {
		cert, key = s.tlsCert, s.tlsKey
	}
	if cert != "" || key != "" {
		pair, err := loadPair(cert, key, "--peer-tls-cert", "--peer-tls-key")
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	ca := s.peerCA
	if ca == "" {
		ca = s.tlsCA
	}
	if ca != "" {
		pool, err := loadPool(ca)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
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
