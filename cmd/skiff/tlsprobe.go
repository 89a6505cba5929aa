package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/skiffkv/skiff"
)

// probeTimeout bounds explainTLS, which runs after the dial has failed
// and so has its own time.
const probeTimeout = 2 * time.Second

// explainTLS looks for a TLS mismatch behind a dial that found no node:
// it opens a connection of its own to each endpoint and tries a TLS
// handshake as the client would (or, for a plaintext client, any TLS
// handshake). gRPC's view of why a connection failed depends on when it
// is asked (a deadline can hide the handshake's error), while this
// answer does not, and a certificate problem is then reported as one
// rather than as an unreachable node. It returns nil when no endpoint
// shows a TLS problem (it is down, or TLS works), and otherwise an error
// wrapping skiff.ErrUnavailable that names the first such endpoint.
func explainTLS(ctx context.Context, addrs []string, cfg *tls.Config) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), probeTimeout)
	defer cancel()
	whys := make([]chan error, len(addrs))
	for i, addr := range addrs {
		whys[i] = make(chan error, 1)
		go func() { whys[i] <- probeTLS(ctx, addr, cfg) }()
	}
	for i, addr := range addrs {
		if why := <-whys[i]; why != nil {
			return fmt.Errorf("%w: %s: TLS failure: %w", skiff.ErrUnavailable, addr, why)
		}
	}
	return nil
}

// probeTLS explains why TLS fails between this client and the node at
// addr, or returns nil.
func probeTLS(ctx context.Context, addr string, cfg *tls.Config) error {
	var conn net.Conn
	var err error
	if testDialer != nil {
		conn, err = testDialer(ctx, addr)
	} else {
		conn, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil // not a TLS matter
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	plaintext := cfg == nil
	if plaintext {
		// Only to learn whether the node speaks TLS: nothing is sent.
		cfg = &tls.Config{InsecureSkipVerify: true}
	}
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"h2"} // as gRPC asks
	if host, _, err := net.SplitHostPort(addr); err == nil && cfg.ServerName == "" {
		cfg.ServerName = host
	}
	tc := tls.Client(conn, cfg)
	err = tc.HandshakeContext(ctx)
	if err == nil && !plaintext {
		// With TLS 1.3 a server refuses a client certificate after the
		// client's side of the handshake is done: its alert is the first
		// thing read. A node that accepts sends its HTTP/2 settings.
		_, err = tc.Read(make([]byte, 1))
	}
	// A TLS alert the node sent comes back as a "remote error".
	var op *net.OpError
	alert := errors.As(err, &op) && op.Op == "remote error"
	var record tls.RecordHeaderError
	var verify *tls.CertificateVerificationError
	switch {
	case plaintext && (err == nil || alert):
		return errors.New("the node serves TLS and this call is plaintext; give --cacert FILE (or SKIFF_CACERT) with the CA that signed the node's certificate")
	case plaintext:
		return nil
	case errors.As(err, &record):
		return errors.New("the node does not serve TLS; drop --cacert, --cert and --key")
	case errors.As(err, &verify) || isX509(err):
		return fmt.Errorf("the node's certificate is not trusted (%v); give --cacert FILE with the CA that signed it", err)
	case alert && strings.Contains(op.Err.Error(), "certificate"):
		return fmt.Errorf("the node refused the client certificate (%v); give --cert and --key of a certificate signed by a CA the node trusts", err)
	case alert:
		return fmt.Errorf("the node ended the handshake (%v)", err)
	}
	return nil // TLS works, or the node went away: not a TLS matter
}

func isX509(err error) bool {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	return errors.As(err, &unknown) || errors.As(err, &host) || errors.As(err, &invalid)
}
