// Command ironlb-ccm is a cloud-controller-manager that runs ironlb's cloud
// provider: the standard service controller hands every type: LoadBalancer
// Service an address from ironlb's pools, and the cloud-node controller
// initializes nodes whose kubelet runs with --cloud-provider=external.
package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	cloudprovider "k8s.io/cloud-provider"
	"k8s.io/cloud-provider/app"
	ccmconfig "k8s.io/cloud-provider/app/config"
	"k8s.io/cloud-provider/names"
	"k8s.io/cloud-provider/options"
	"k8s.io/component-base/cli"
	cliflag "k8s.io/component-base/cli/flag"
	_ "k8s.io/component-base/logs/json/register"          // --logging-format=json
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics on /metrics
	_ "k8s.io/component-base/metrics/prometheus/version"  // build info on /metrics
	genericcontrollermanager "k8s.io/controller-manager/app"
	"k8s.io/controller-manager/controller"
	"k8s.io/klog/v2"

	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/provider"
	"github.com/ironlb/ironlb/provider/servicecontroller"
)

// leaseName is ironlb's own leader-election lease, so it never contends with
// another cloud-controller-manager running under the upstream default name.
const leaseName = "ironlb-cloud-controller-manager"

// controllers are the only ones ironlb needs: the service controller and the
// cloud-node controller. cloud-node-lifecycle would delete nodes ironlb cannot
// see, and route has nothing to program on bare metal.
var controllers = []string{names.ServiceLBController, names.CloudNodeController}

func main() {
	ccmOptions, err := options.NewCloudControllerManagerOptions()
	if err != nil {
		klog.Fatalf("unable to initialize command options: %v", err)
	}
	applyDefaults(ccmOptions)

	providerOptions := provider.DefaultOptions()
	flags := cliflag.NamedFlagSets{}
	providerOptions.AddFlags(flags.FlagSet("ironlb"))
	provider.Register(providerOptions)

	command := app.NewCloudControllerManagerCommand(ccmOptions, initCloud, controllerInitializers(&providerOptions), names.CCMControllerAliases(), flags, wait.NeverStop)
	command.Use = "ironlb-ccm"
	os.Exit(cli.Run(command))
}

// applyDefaults makes `ironlb-ccm --kubeconfig=FILE` work against any
// apiserver with no further flags.
func applyDefaults(o *options.CloudControllerManagerOptions) {
	o.KubeCloudShared.CloudProvider.Name = provider.ProviderName
	o.Generic.LeaderElection.ResourceName = leaseName
	o.Generic.LeaderElection.ResourceNamespace = config.DefaultNamespace
	o.KubeCloudShared.ConfigureCloudRoutes = false
	o.KubeCloudShared.AllocateNodeCIDRs = false
	o.Authentication.SkipInClusterLookup = true
	// What the install needs, measured (docs/benchmarks.md, "A burst of
	// new Services"): a new Service costs one write of the service
	// controller, so with ten workers the upstream client limits (20/s,
	// burst 30) would be the whole bound on a burst. 100/s with a burst of
	// 200 assigns 300 Services in about 2 s; the apiserver's priority and
	// fairness still protects it from any one client.
	o.ServiceController.ConcurrentServiceSyncs = 10
	o.Generic.ClientConnection.QPS = 100
	o.Generic.ClientConnection.Burst = 200
	// A killed leader's standby takes over within one lease (plus a retry
	// period) instead of the upstream 15 s: the lease is ironlb's own, and
	// the renew deadline keeps the upstream margin for a slow apiserver.
	o.Generic.LeaderElection.LeaseDuration.Duration = 10 * time.Second
	o.Generic.LeaderElection.RenewDeadline.Duration = 7 * time.Second
	o.Generic.LeaderElection.RetryPeriod.Duration = 2 * time.Second
	// Prometheus and probes reach these without credentials, as they do
	// for kube-state-metrics and most add-ons.
	o.Authorization.AlwaysAllowPaths = append(o.Authorization.AlwaysAllowPaths, "/metrics")
}

func controllerInitializers(providerOptions *provider.Options) map[string]app.ControllerInitFuncConstructor {
	initializers := map[string]app.ControllerInitFuncConstructor{}
	for name, constructor := range app.DefaultInitFuncConstructors {
		if slices.Contains(controllers, name) {
			constructor.InitContext.ClientName = "ironlb-" + constructor.InitContext.ClientName
			initializers[name] = constructor
		}
	}
	// ironlb's own service controller takes the upstream one's name, so
	// --controllers works as users know it; it serves by loadBalancerClass.
	initializers[names.ServiceLBController] = app.ControllerInitFuncConstructor{
		InitContext: app.ControllerInitContext{ClientName: "ironlb-service-controller"},
		Constructor: func(initContext app.ControllerInitContext, completed *ccmconfig.CompletedConfig, cloud cloudprovider.Interface) app.InitFunc {
			return func(ctx context.Context, _ genericcontrollermanager.ControllerContext) (controller.Interface, bool, error) {
				return startServiceController(ctx, initContext, completed, cloud, providerOptions.Filter)
			}
		},
	}
	return initializers
}

// startServiceController runs ironlb's service controller on the shared
// Service informer, with --concurrent-service-syncs workers.
func startServiceController(ctx context.Context, initContext app.ControllerInitContext, completed *ccmconfig.CompletedConfig, cloud cloudprovider.Interface, filter config.ClassFilter) (controller.Interface, bool, error) {
	balancer, ok := cloud.LoadBalancer()
	if !ok {
		return nil, false, fmt.Errorf("cloud provider %q has no load balancer", cloud.ProviderName())
	}
	client := completed.ClientBuilder.ClientOrDie(initContext.ClientName)
	recorder := provider.NewEventRecorder(ctx, client, "ironlb-service-controller")
	opts := servicecontroller.Options{ClusterName: completed.ComponentConfig.KubeCloudShared.ClusterName, Filter: filter}
	c, err := servicecontroller.New(opts, balancer, client, completed.SharedInformers.Core().V1().Services(), recorder)
	if err != nil {
		return nil, false, err
	}
	go c.Run(ctx, int(completed.ComponentConfig.ServiceController.ConcurrentServiceSyncs))
	return nil, true, nil
}

func initCloud(c *ccmconfig.CompletedConfig) cloudprovider.Interface {
	cfg := c.ComponentConfig.KubeCloudShared.CloudProvider
	cloud, err := cloudprovider.InitCloudProvider(cfg.Name, cfg.CloudConfigFile)
	if err != nil || cloud == nil {
		klog.Fatalf("cloud provider %q could not be initialized (ironlb-ccm runs only --cloud-provider=%s): %v", cfg.Name, provider.ProviderName, err)
	}
	return cloud
}
