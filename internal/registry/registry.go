// Package registry reads a topic's schema from Pulsar's schema registry over the Pulsar binary
// protocol, as pulsar-client-go does internally without exposing it: CONNECT, LOOKUP of the
// topic (following redirects and proxies), then GET_SCHEMA on the broker that serves it.
package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	pb "github.com/pipelined/pipelined/internal/pulsarpb"
)

// Options says how to reach Pulsar.
type Options struct {
	// URL of the Pulsar service: "pulsar://host:port" or "pulsar+ssl://host:port"; several
	// hosts separated by commas are tried in order. The port defaults to 6650 and 6651.
	URL string
	// Token for token authentication (auth method "token"). Default none.
	Token string
	// TLSConfig for pulsar+ssl://; client certificates in it authenticate with the "tls"
	// method when no Token is given. Default: system roots, the host name verified.
	TLSConfig *tls.Config
	// Timeout bounds the whole operation. Default 30s.
	Timeout time.Duration
}

// defaultTimeout is Options.Timeout's default.
const defaultTimeout = 30 * time.Second

// maxRedirects bounds lookup redirects, as pulsar-client-go does.
const maxRedirects = 20

// ErrNoSchema is returned (wrapped) when the topic has no schema, or does not exist: Pulsar
// does not tell the two apart.
var ErrNoSchema = errors.New("no schema")

// Schema returns the latest schema of topic as its definition text (for Avro, the JSON schema)
// and its type in Pulsar's spelling ("AVRO", "JSON", "KEY_VALUE", ...). topic is a full name
// ("persistent://tenant/namespace/name"), "tenant/namespace/name" or a name in public/default.
// Pulsar keeps one schema per partitioned topic: ask for the base name or any partition.
func Schema(ctx context.Context, o Options, topic string) (definition string, typ string, err error) {
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout
	}
	full, err := fullTopicName(topic)
	if err != nil {
		return "", "", err
	}
	hosts, useTLS, err := parseServiceURL(o.URL)
	if err != nil {
		return "", "", fmt.Errorf("schema of topic %q: %w", topic, err)
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	s, err := fetch(ctx, &o, hosts, useTLS, full)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return "", "", fmt.Errorf("schema of topic %q from %s: no answer within %v: %w", full, o.URL, o.Timeout, err)
		}
		return "", "", fmt.Errorf("schema of topic %q from %s: %w", full, o.URL, err)
	}
	return string(s.GetSchemaData()), typeName(s.GetType()), nil
}

// fetch connects to the service, looks topic up and asks its broker for the schema.
func fetch(ctx context.Context, o *Options, hosts []string, useTLS bool, topic string) (*pb.Schema, error) {
	c, err := dialService(ctx, o, hosts, useTLS)
	if err != nil {
		return nil, err
	}
	service := c.ep.physical // a proxy the broker asks us to go through
	defer func() { c.close() }()

	lr, err := c.lookup(ctx, topic, false)
	for range maxRedirects {
		if err != nil {
			return nil, err
		}
		kind := lr.GetResponse()
		switch {
		case lr.Response == nil:
			return nil, fmt.Errorf("LOOKUP on %s: answer without response type", c.ep)
		case kind == pb.CommandLookupTopicResponse_Failed && lr.GetError() == pb.ServerError_TopicNotFound:
			// Brokers may refuse to look up a partitioned topic's base name, which has no
			// owner; any broker answers GET_SCHEMA from the registry, as pulsar-client-go
			// asks it, and says whether the topic has a schema.
			return c.getSchema(ctx, topic)
		case kind == pb.CommandLookupTopicResponse_Failed:
			return nil, fmt.Errorf("LOOKUP on %s: %v: %s", c.ep, lr.GetError(), lr.GetMessage())
		case kind != pb.CommandLookupTopicResponse_Connect && kind != pb.CommandLookupTopicResponse_Redirect:
			return nil, fmt.Errorf("LOOKUP on %s: unknown response type %v", c.ep, kind)
		}
		ep, epErr := brokerEndpoint(lr, useTLS, service)
		if epErr != nil {
			return nil, fmt.Errorf("LOOKUP on %s: %w", c.ep, epErr)
		}
		if ep != c.ep {
			next, dialErr := dial(ctx, o, ep)
			if dialErr != nil {
				return nil, dialErr
			}
			c.close()
			c = next
		}
		if kind == pb.CommandLookupTopicResponse_Connect {
			return c.getSchema(ctx, topic)
		}
		lr, err = c.lookup(ctx, topic, lr.GetAuthoritative())
	}
	return nil, fmt.Errorf("LOOKUP: more than %d redirects, the last to %s", maxRedirects, c.ep)
}

// dialService connects to the first of hosts that answers.
func dialService(ctx context.Context, o *Options, hosts []string, useTLS bool) (*conn, error) {
	var errs []error
	for _, h := range hosts {
		c, err := dial(ctx, o, endpoint{logical: h, physical: h, tls: useTLS})
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	// One line, for logs; every error stays reachable to errors.Is.
	args := make([]any, len(errs))
	for i, e := range errs {
		args[i] = e
	}
	return nil, fmt.Errorf(strings.Repeat("%w; ", len(errs)-1)+"%w", args...)
}

// brokerEndpoint is where a lookup answer sends us: the broker URL of our scheme, reached
// through service (the host we first connected to) when the answer says to proxy.
func brokerEndpoint(lr *pb.CommandLookupTopicResponse, useTLS bool, service string) (endpoint, error) {
	raw, field := lr.GetBrokerServiceUrl(), "broker_service_url"
	if useTLS {
		raw, field = lr.GetBrokerServiceUrlTls(), "broker_service_url_tls"
	}
	if raw == "" {
		return endpoint{}, fmt.Errorf("answer without %s", field)
	}
	hosts, _, err := parseServiceURL(raw)
	if err != nil {
		return endpoint{}, fmt.Errorf("%s: %w", field, err)
	}
	if len(hosts) != 1 {
		return endpoint{}, fmt.Errorf("%s %q: want one host", field, raw)
	}
	ep := endpoint{logical: hosts[0], physical: hosts[0], tls: useTLS}
	if lr.GetProxyThroughServiceUrl() {
		ep.physical = service
	}
	return ep, nil
}

// parseServiceURL splits "pulsar://h1:6650,h2" into host:port pairs, adding default ports.
func parseServiceURL(raw string) (hosts []string, useTLS bool, err error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, false, fmt.Errorf("service URL %q: want pulsar:// or pulsar+ssl://", raw)
	}
	port := "6650"
	switch scheme {
	case "pulsar":
	case "pulsar+ssl":
		useTLS, port = true, "6651"
	default:
		return nil, false, fmt.Errorf("service URL %q: scheme %q: want pulsar or pulsar+ssl", raw, scheme)
	}
	rest = strings.TrimSuffix(rest, "/")
	for h := range strings.SplitSeq(rest, ",") {
		if h == "" || strings.ContainsAny(h, "/?#@") {
			return nil, false, fmt.Errorf("service URL %q: bad host %q", raw, h)
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			if strings.Count(h, ":") > 1 && !strings.HasPrefix(h, "[") {
				h = "[" + h + "]" // bare IPv6 address
			}
			h = net.JoinHostPort(strings.Trim(h, "[]"), port)
		}
		if u, err := url.Parse("pulsar://" + h); err != nil || u.Hostname() == "" {
			return nil, false, fmt.Errorf("service URL %q: bad host %q", raw, h)
		}
		hosts = append(hosts, h)
	}
	return hosts, useTLS, nil
}

// fullTopicName completes a short topic name as Pulsar does.
func fullTopicName(name string) (string, error) {
	if strings.Contains(name, "://") {
		domain, rest, _ := strings.Cut(name, "://")
		if (domain != "persistent" && domain != "non-persistent") || strings.Count(rest, "/") != 2 || strings.Contains(rest, "//") {
			return "", fmt.Errorf("topic %q: want [persistent://]tenant/namespace/name", name)
		}
		return name, nil
	}
	switch strings.Count(name, "/") {
	case 0:
		if name != "" {
			return "persistent://public/default/" + name, nil
		}
	case 2:
		if !strings.HasPrefix(name, "/") && !strings.HasSuffix(name, "/") && !strings.Contains(name, "//") {
			return "persistent://" + name, nil
		}
	}
	return "", fmt.Errorf("topic %q: want [persistent://]tenant/namespace/name or a name in public/default", name)
}

// typeName spells a schema type as Pulsar's SchemaType does.
func typeName(t pb.Schema_Type) string {
	switch t {
	case pb.Schema_Bool:
		return "BOOLEAN"
	case pb.Schema_KeyValue:
		return "KEY_VALUE"
	case pb.Schema_LocalDate:
		return "LOCAL_DATE"
	case pb.Schema_LocalTime:
		return "LOCAL_TIME"
	case pb.Schema_LocalDateTime:
		return "LOCAL_DATE_TIME"
	case pb.Schema_ProtobufNative:
		return "PROTOBUF_NATIVE"
	}
	return strings.ToUpper(t.String())
}
