package framework

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Defaults for Options.
const (
	DefaultServiceCIDR  = "198.18.0.0/16"
	DefaultStartTimeout = 90 * time.Second
	// AdminUser is the identity of the admin kubeconfig; it is in
	// system:masters, which RBAC lets do anything.
	AdminUser = "ironlb-admin"
)

const (
	// stopTimeout bounds each server's graceful shutdown in Stop.
	stopTimeout = 15 * time.Second
	// portAttempts is how often a server is started on fresh ports when the
	// ones picked were taken in the meantime.
	portAttempts = 3
	// failureLogLines is how much of a failed server's log an error carries.
	failureLogLines = 30
)

// Options configures StartControlPlane. The zero value is usable.
type Options struct {
	// ServiceCIDR is --service-cluster-ip-range: one CIDR, or an IPv4 and an
	// IPv6 CIDR separated by a comma for dual stack. Default
	// DefaultServiceCIDR.
	ServiceCIDR string
	// Dir holds configuration, data and logs. Default: a fresh temporary
	// directory, removed by Stop. A given Dir is created if needed and kept.
	Dir string
	// ApiserverBinary defaults to DefaultApiserverBinary().
	ApiserverBinary string
	// EtcdBinary defaults to DefaultEtcdBinaryPath().
	EtcdBinary string
	// StartTimeout bounds the whole start-up. Default DefaultStartTimeout.
	StartTimeout time.Duration
	// ExtraApiserverArgs are appended to the kube-apiserver command line;
	// for a repeated flag the last value wins.
	ExtraApiserverArgs []string
	// Logf receives progress messages. Default: discard.
	Logf func(format string, args ...any)

	// Netns, if set, runs etcd and kube-apiserver inside this existing
	// network namespace (via `ip netns exec`); etcd listens on the
	// namespace's own loopback. RESTConfig, Client and the start-up checks
	// reach the servers through NetnsDialer, so the calling process needs no
	// address or route into the namespace.
	Netns string
	// BindAddress is the address kube-apiserver binds to and advertises, and
	// the host in URL and in the kubeconfigs; its serving certificate names
	// it. Default 127.0.0.1. It must be a loopback address unless Netns is
	// set: the harness never serves on the machine's own network.
	BindAddress string
}

// ControlPlane is a running etcd plus kube-apiserver, on loopback or inside a
// network namespace (Options.Netns).
type ControlPlane struct {
	// Dir holds pki/, etcd/, the logs and the kubeconfig.
	Dir string
	// Kubeconfig is the path of an admin kubeconfig (usable by kubectl).
	Kubeconfig string
	// RESTConfig and Client authenticate as AdminUser.
	RESTConfig *rest.Config
	Client     kubernetes.Interface
	// URL is the apiserver's https URL (https://BindAddress:port). With
	// Netns set it is reachable only from that namespace's network (the
	// kubeconfig is for processes run there, e.g. `ip netns exec <netns>
	// kubectl`); RESTConfig reaches it from anywhere through Dial.
	URL string
	// Netns is Options.Netns.
	Netns string
	// Dial opens connections from inside Netns; RESTConfig uses it. Nil when
	// the control plane runs in the caller's namespace.
	Dial Dialer
	// EtcdURL is etcd's client URL (plain http on loopback, Netns's own if
	// set).
	EtcdURL string
	// ServiceCIDR is the --service-cluster-ip-range in use.
	ServiceCIDR string
	// Etcd and Apiserver are the server processes.
	Etcd, Apiserver *Process

	ca          *certAuthority
	bindAddress string
	ownsDir     bool
	logf        func(format string, args ...any)
	stopOnce    sync.Once
}

// StartControlPlane starts etcd and kube-apiserver and returns once the
// apiserver is ready and the default namespace and the kubernetes Service
// exist. ctx bounds only the start-up; the processes run until Stop (or until
// this process dies). On error nothing is left running.
func StartControlPlane(ctx context.Context, opts Options) (_ *ControlPlane, err error) {
	begin := time.Now()
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	if err := checkExecutable("kube-apiserver", opts.ApiserverBinary, "run hack/ensure-apiserver.sh (make test does) or set "+EnvKubeApiserver); err != nil {
		return nil, err
	}
	if err := checkExecutable("etcd", opts.EtcdBinary, "run hack/ensure-deps.sh (it installs etcd-server) or set "+EnvEtcd); err != nil {
		return nil, err
	}
	if _, err := firstServiceIPs(opts.ServiceCIDR); err != nil {
		return nil, err
	}

	c := &ControlPlane{Dir: opts.Dir, ServiceCIDR: opts.ServiceCIDR, Netns: opts.Netns, bindAddress: opts.BindAddress, logf: opts.Logf}
	if c.Netns != "" {
		c.Dial = NetnsDialer(c.Netns)
	}
	// Stop copes with a partial start: it stops what runs and removes only a
	// Dir this call created.
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	if c.Dir == "" {
		if c.Dir, err = os.MkdirTemp("", "ironlb-controlplane-"); err != nil {
			return nil, err
		}
		c.ownsDir = true
	} else if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, err
	}
	if c.Dir, err = filepath.Abs(c.Dir); err != nil {
		return nil, err
	}

	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()
	// The servers must outlive the start-up context.
	procCtx := context.WithoutCancel(ctx)

	if err := c.writePKI(); err != nil {
		return nil, fmt.Errorf("control plane PKI: %w", err)
	}
	if err := c.startEtcd(ctx, procCtx, opts.EtcdBinary); err != nil {
		return nil, err
	}
	c.logf("etcd healthy at %s after %v", c.EtcdURL, time.Since(begin).Round(time.Millisecond))
	if err := c.startApiserver(ctx, procCtx, opts.ApiserverBinary, opts.ExtraApiserverArgs); err != nil {
		return nil, err
	}
	// ironlb's own API is part of every cluster ironlb runs in.
	if err := InstallCRDs(ctx, c.RESTConfig); err != nil {
		return nil, err
	}
	c.logf("control plane ready after %v: %s, KUBECONFIG=%s", time.Since(begin).Round(time.Millisecond), c.URL, c.Kubeconfig)
	return c, nil
}

func (o *Options) setDefaults() error {
	if o.ServiceCIDR == "" {
		o.ServiceCIDR = DefaultServiceCIDR
	}
	if o.ApiserverBinary == "" {
		p, err := DefaultApiserverBinary()
		if err != nil {
			return fmt.Errorf("locate kube-apiserver (set Options.ApiserverBinary or %s): %w", EnvKubeApiserver, err)
		}
		o.ApiserverBinary = p
	}
	if o.EtcdBinary == "" {
		o.EtcdBinary = DefaultEtcdBinaryPath()
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = DefaultStartTimeout
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.BindAddress == "" {
		o.BindAddress = "127.0.0.1"
	}
	bind, err := netip.ParseAddr(o.BindAddress)
	if err != nil {
		return fmt.Errorf("BindAddress: %w", err)
	}
	if o.Netns == "" && !bind.IsLoopback() {
		return fmt.Errorf("BindAddress %s is not a loopback address; serving on another address needs Netns", bind)
	}
	return nil
}

// Stop terminates the apiserver, then etcd (SIGTERM, SIGKILL after a bound),
// waits for both, and removes Dir if StartControlPlane created it. It is safe
// to call more than once and on a partially started control plane.
func (c *ControlPlane) Stop() {
	if c == nil {
		return
	}
	c.stopOnce.Do(func() {
		begin := time.Now()
		stopAll(stopTimeout, c.Apiserver, c.Etcd)
		if c.Etcd != nil {
			c.logf("control plane stopped in %v", time.Since(begin).Round(time.Millisecond))
		}
		if c.ownsDir {
			if err := os.RemoveAll(c.Dir); err != nil {
				c.logf("remove %s: %v", c.Dir, err)
			}
		}
	})
}

// LogTails returns the last n lines of each server's log, labelled, for
// failure reports.
func (c *ControlPlane) LogTails(n int) string {
	var b strings.Builder
	for _, p := range []*Process{c.Etcd, c.Apiserver} {
		if p != nil {
			fmt.Fprintf(&b, "--- last %d lines of %s ---\n%s\n", n, p.LogPath, p.LogTail(n))
		}
	}
	return b.String()
}

// UserRESTConfig returns a config that authenticates with a fresh client
// certificate for user in groups (e.g. to run ironlb under its own RBAC
// identity rather than as admin).
func (c *ControlPlane) UserRESTConfig(user string, groups ...string) (*rest.Config, error) {
	kp, err := c.ca.issueClient(user, groups...)
	if err != nil {
		return nil, err
	}
	return c.restConfig(kp), nil
}

// WriteUserKubeconfig writes a kubeconfig for user in groups to path (mode
// 0600), for handing to a binary under test.
func (c *ControlPlane) WriteUserKubeconfig(path, user string, groups ...string) error {
	kp, err := c.ca.issueClient(user, groups...)
	if err != nil {
		return err
	}
	return writeKubeconfig(path, c.URL, c.ca.certPEM, user, kp)
}

// WriteTokenLikeKubeconfig writes a kubeconfig (mode 0600) that acts as user
// in groups with extra, as a Pod's projected ServiceAccount token does: its
// authentication.kubernetes.io/node-name names the Pod's node, which a client
// certificate cannot carry. It authenticates as an administrator and
// impersonates, so RBAC and admission see user, groups and extra.
func (c *ControlPlane) WriteTokenLikeKubeconfig(path, user string, groups []string, extra map[string][]string) error {
	kp, err := c.ca.issueClient("ironlb-test-impersonator", "system:masters")
	if err != nil {
		return err
	}
	const name = "ironlb-test"
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: c.URL, CertificateAuthorityData: c.ca.certPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: kp.CertPEM, ClientKeyData: kp.KeyPEM,
		Impersonate: user, ImpersonateGroups: groups, ImpersonateUserExtra: extra}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: user}
	cfg.CurrentContext = name
	return clientcmd.WriteToFile(*cfg, path)
}

// CAFile is the cluster CA's certificate: it signed the apiserver's serving
// certificate and every client certificate the harness issues.
func (c *ControlPlane) CAFile() string { return c.path("pki", "ca.crt") }

// ServiceAccountKeyFile is the private key that signs service account
// tokens (kube-controller-manager's --service-account-private-key-file).
func (c *ControlPlane) ServiceAccountKeyFile() string { return c.path("pki", "sa.key") }

func (c *ControlPlane) path(elem ...string) string {
	return filepath.Join(append([]string{c.Dir}, elem...)...)
}

func (c *ControlPlane) restConfig(kp keyPair) *rest.Config {
	return &rest.Config{
		Host: c.URL,
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   c.ca.certPEM,
			CertData: kp.CertPEM,
			KeyData:  kp.KeyPEM,
		},
		// client-go's defaults (5 QPS) would make busy tests crawl.
		QPS:       100,
		Burst:     200,
		UserAgent: "ironlb-test-framework",
		Dial:      c.Dial,
	}
}

// writePKI creates the CA, the apiserver's serving certificate and the
// service-account token keys under Dir/pki. Certificates do not name ports, so
// they survive a retry on another port.
func (c *ControlPlane) writePKI() error {
	if err := os.MkdirAll(c.path("pki"), 0o700); err != nil {
		return err
	}
	ca, err := newCertAuthority("ironlb-test-ca")
	if err != nil {
		return err
	}
	c.ca = ca
	saKey, saPub, err := newServiceAccountKeys()
	if err != nil {
		return err
	}
	serving, err := ca.issueServing("kube-apiserver", apiserverDNSNames(), c.apiserverIPs())
	if err != nil {
		return err
	}
	return writeFiles(map[string][]byte{
		c.path("pki", "ca.crt"):        ca.certPEM,
		c.path("pki", "sa.key"):        saKey,
		c.path("pki", "sa.pub"):        saPub,
		c.path("pki", "apiserver.crt"): serving.CertPEM,
		c.path("pki", "apiserver.key"): serving.KeyPEM,
	})
}

func apiserverDNSNames() []string {
	return []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
}

// apiserverIPs are the addresses clients may dial: loopback, the bind
// address, and the kubernetes Service's ClusterIP(s), which in-cluster clients
// use.
func (c *ControlPlane) apiserverIPs() []net.IP {
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if bind := netip.MustParseAddr(c.bindAddress); !bind.IsLoopback() { // validated in setDefaults
		ips = append(ips, bind.AsSlice())
	}
	svcIPs, _ := firstServiceIPs(c.ServiceCIDR) // validated in StartControlPlane
	for _, ip := range svcIPs {
		ips = append(ips, ip.AsSlice())
	}
	return ips
}

// firstServiceIPs returns the first address of each CIDR in a
// --service-cluster-ip-range value; the apiserver gives it to the kubernetes
// Service.
func firstServiceIPs(serviceCIDR string) ([]netip.Addr, error) {
	var ips []netip.Addr
	for _, s := range strings.Split(serviceCIDR, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("service CIDR %q: %w", serviceCIDR, err)
		}
		if !p.Addr().IsLoopback() && !p.Addr().IsPrivate() && !isDocumentationOrBenchmark(p.Addr()) {
			// Not a hard rule of Kubernetes, but this harness must never
			// claim routable space.
			return nil, fmt.Errorf("service CIDR %s is publicly routable; use a private, benchmark (198.18.0.0/15) or documentation (2001:db8::/32) range", p)
		}
		ips = append(ips, p.Masked().Addr().Next())
	}
	return ips, nil
}

func isDocumentationOrBenchmark(a netip.Addr) bool {
	for _, p := range []netip.Prefix{
		netip.MustParsePrefix("198.18.0.0/15"),
		netip.MustParsePrefix("192.0.2.0/24"),
		netip.MustParsePrefix("198.51.100.0/24"),
		netip.MustParsePrefix("203.0.113.0/24"),
		netip.MustParsePrefix("2001:db8::/32"),
	} {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// startEtcd runs a single-member etcd on two free loopback ports, retrying on
// fresh ports if one was taken between picking and binding.
func (c *ControlPlane) startEtcd(ctx, procCtx context.Context, bin string) error {
	for attempt := 1; ; attempt++ {
		ports, err := c.freePorts("127.0.0.1", 2)
		if err != nil {
			return err
		}
		clientURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
		peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
		// Start from an empty data dir: a failed attempt may have left a
		// member bound to other URLs.
		if err := os.RemoveAll(c.path("etcd")); err != nil {
			return err
		}
		p, err := StartProcessWith(procCtx, ProcessOptions{Name: "etcd", LogPath: c.path("etcd.log"), Netns: c.Netns, StopGrace: stopTimeout}, bin,
			"--name=ironlb",
			"--data-dir="+c.path("etcd"),
			"--listen-client-urls="+clientURL,
			"--advertise-client-urls="+clientURL,
			"--listen-peer-urls="+peerURL,
			"--initial-advertise-peer-urls="+peerURL,
			"--initial-cluster=ironlb="+peerURL,
			"--initial-cluster-state=new",
			"--logger=zap",
			"--log-outputs=stderr",
		)
		if err != nil {
			return err
		}
		err = c.waitServing(ctx, p, func(ctx context.Context) error { return etcdHealthy(ctx, c.httpClient(), clientURL) })
		if err == nil {
			c.Etcd, c.EtcdURL = p, clientURL
			return nil
		}
		_ = p.Kill()
		if attempt < portAttempts && portTaken(p) {
			c.logf("etcd: a port was taken, retrying with new ports")
			continue
		}
		return fmt.Errorf("etcd: %w\n%s", err, tailFor(p))
	}
}

// startApiserver writes the admin credentials, runs kube-apiserver on a free
// port of the bind address (retrying on fresh ports if it was taken) and waits
// until it is ready for clients.
func (c *ControlPlane) startApiserver(ctx, procCtx context.Context, bin string, extraArgs []string) error {
	admin, err := c.ca.issueClient(AdminUser, "system:masters")
	if err != nil {
		return err
	}
	c.Kubeconfig = c.path("kubeconfig")
	for attempt := 1; ; attempt++ {
		ports, err := c.freePorts(c.bindAddress, 1)
		if err != nil {
			return err
		}
		c.URL = "https://" + net.JoinHostPort(c.bindAddress, strconv.Itoa(ports[0]))
		if err := writeKubeconfig(c.Kubeconfig, c.URL, c.ca.certPEM, AdminUser, admin); err != nil {
			return err
		}
		c.RESTConfig = c.restConfig(admin)
		if c.Client, err = kubernetes.NewForConfig(c.RESTConfig); err != nil {
			return err
		}

		args := []string{
			"--etcd-servers=" + c.EtcdURL,
			"--bind-address=" + c.bindAddress,
			"--advertise-address=" + c.bindAddress,
			// Endpoints validation rejects loopback addresses, so the default
			// "lease" reconciler would fail to publish 127.0.0.1 for the
			// kubernetes Service and log an error every 10s. Nothing in
			// the harness dials that Service's endpoints.
			"--endpoint-reconciler-type=none",
			"--secure-port=" + strconv.Itoa(ports[0]),
			// Also keeps the apiserver from writing to /var/run/kubernetes.
			"--cert-dir=" + c.path("pki"),
			"--tls-cert-file=" + c.path("pki", "apiserver.crt"),
			"--tls-private-key-file=" + c.path("pki", "apiserver.key"),
			"--client-ca-file=" + c.path("pki", "ca.crt"),
			"--service-account-key-file=" + c.path("pki", "sa.pub"),
			"--service-account-signing-key-file=" + c.path("pki", "sa.key"),
			"--service-account-issuer=https://kubernetes.default.svc",
			"--authorization-mode=Node,RBAC",
			"--service-cluster-ip-range=" + c.ServiceCIDR,
			"--allow-privileged=true",
			// Fairness queuing only adds latency to a single-tenant test
			// apiserver.
			"--enable-priority-and-fairness=false",
			"--profiling=false",
		}
		p, err := StartProcessWith(procCtx, ProcessOptions{Name: "kube-apiserver", LogPath: c.path("kube-apiserver.log"), Netns: c.Netns, StopGrace: stopTimeout},
			bin, append(args, extraArgs...)...)
		if err != nil {
			return err
		}
		err = c.waitServing(ctx, p, c.apiserverReady)
		if err == nil {
			c.Apiserver = p
			return nil
		}
		_ = p.Kill()
		if attempt < portAttempts && portTaken(p) {
			c.logf("kube-apiserver: its port was taken, retrying with a new one")
			continue
		}
		return fmt.Errorf("kube-apiserver: %w\n%s", err, tailFor(p))
	}
}

// apiserverReady reports nil once /readyz passes and the objects every test
// relies on exist: the default namespace, and the kubernetes Service, whose
// presence shows the ClusterIP allocator works (Service creation fails until
// the default ServiceCIDR is ready).
func (c *ControlPlane) apiserverReady(ctx context.Context) error {
	body, err := c.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	if err != nil {
		// The body lists every check; only the failing ones ("[-]…") say
		// what is being waited for.
		var failing []string
		for _, line := range strings.Split(string(body), "\n") {
			if check, ok := strings.CutPrefix(line, "[-]"); ok {
				failing = append(failing, check)
			}
		}
		if len(failing) > 0 {
			return fmt.Errorf("/readyz: %s", strings.Join(failing, "; "))
		}
		return fmt.Errorf("/readyz: %w", err)
	}
	if _, err := c.Client.CoreV1().Namespaces().Get(ctx, metav1.NamespaceDefault, metav1.GetOptions{}); err != nil {
		return fmt.Errorf("namespace %q: %w", metav1.NamespaceDefault, err)
	}
	cidr, err := c.Client.NetworkingV1().ServiceCIDRs().Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("default ServiceCIDR: %w", err)
	}
	if !serviceCIDRReady(cidr) {
		return errors.New("default ServiceCIDR is not Ready yet")
	}
	svc, err := c.Client.CoreV1().Services(metav1.NamespaceDefault).Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("service default/kubernetes: %w", err)
	}
	if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
		return errors.New("service default/kubernetes has no ClusterIP yet")
	}
	return nil
}

func serviceCIDRReady(cidr *networkingv1.ServiceCIDR) bool {
	for _, cond := range cidr.Status.Conditions {
		if cond.Type == networkingv1.ServiceCIDRConditionReady {
			return cond.Status == metav1.ConditionTrue
		}
	}
	return false
}

// waitServing polls probe until it succeeds, p exits, or ctx ends, logging
// progress every few seconds. The error carries the last probe failure.
func (c *ControlPlane) waitServing(ctx context.Context, p *Process, probe func(context.Context) error) error {
	const (
		interval    = 100 * time.Millisecond
		probeBound  = 5 * time.Second
		reportEvery = 5 * time.Second
	)
	begin := time.Now()
	lastReport := begin
	var lastErr error
	for {
		if p.Exited() {
			return fmt.Errorf("exited during start-up (%v)", p.Wait())
		}
		probeCtx, cancel := context.WithTimeout(ctx, probeBound)
		lastErr = probe(probeCtx)
		cancel()
		if lastErr == nil {
			return nil
		}
		if time.Since(lastReport) >= reportEvery {
			lastReport = time.Now()
			c.logf("waiting for %s (%v): %v", p.Name, time.Since(begin).Round(time.Second), lastErr)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready after %v (%v); last check: %w", time.Since(begin).Round(time.Millisecond), context.Cause(ctx), lastErr)
		case <-p.Done():
		case <-time.After(interval):
		}
	}
}

// etcdHealthy checks etcd's /health endpoint, which reports false until the
// member has a leader.
func etcdHealthy(ctx context.Context, client *http.Client, clientURL string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, clientURL+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return err
	}
	var health struct {
		Health string `json:"health"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &health) != nil || health.Health != "true" {
		return fmt.Errorf("/health: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

func writeKubeconfig(path, server string, caPEM []byte, user string, kp keyPair) error {
	const name = "ironlb-test"
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: kp.CertPEM, ClientKeyData: kp.KeyPEM}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: user}
	cfg.CurrentContext = name
	return clientcmd.WriteToFile(*cfg, path)
}

// httpClient returns a client for plain-HTTP servers of the control plane
// (etcd), dialling inside Netns if set.
func (c *ControlPlane) httpClient() *http.Client {
	if c.Dial == nil {
		return http.DefaultClient
	}
	// No keep-alive: an idle connection would keep the namespace alive
	// after it is deleted.
	return &http.Client{Transport: &http.Transport{DialContext: c.Dial, DisableKeepAlives: true}}
}

// freePort returns a TCP port on host that was free a moment ago: on
// 127.0.0.1 as FreePort does, or inside Netns if set.
func (c *ControlPlane) freePort(host string) (int, error) {
	if c.Netns == "" {
		return FreePort()
	}
	l, err := ListenInNetns(c.Netns, "tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// freePorts returns n distinct free ports on host (see freePort).
func (c *ControlPlane) freePorts(host string, n int) ([]int, error) {
	seen := map[int]bool{}
	var ports []int
	for len(ports) < n {
		p, err := c.freePort(host)
		if err != nil {
			return nil, fmt.Errorf("pick a free port: %w", err)
		}
		if !seen[p] {
			seen[p] = true
			ports = append(ports, p)
		}
	}
	return ports, nil
}

// portTaken reports whether p's run failed because it could not bind.
func portTaken(p *Process) bool {
	return strings.Contains(p.output(1<<20), "address already in use")
}

func tailFor(p *Process) string {
	return fmt.Sprintf("--- last %d lines of %s ---\n%s", failureLogLines, p.LogPath, p.LogTail(failureLogLines))
}
