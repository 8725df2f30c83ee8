package registry

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// LoadTLS builds Options.TLSConfig from files as pulsar-client-go does from its TLS options:
// trustCertsFile is a PEM CA bundle (system roots when empty), certFile and keyFile a client
// certificate for mTLS (none when both are empty), allowInsecure accepts any server certificate.
func LoadTLS(trustCertsFile, certFile, keyFile string, allowInsecure bool) (*tls.Config, error) {
	cfg := &tls.Config{InsecureSkipVerify: allowInsecure} // #nosec G402 -- opt-in by config
	if trustCertsFile != "" {
		pem, err := os.ReadFile(trustCertsFile)
		if err != nil {
			return nil, fmt.Errorf("trust certs: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("trust certs %q: no PEM certificate found", trustCertsFile)
		}
	}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate %q, key %q: %w", certFile, keyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
