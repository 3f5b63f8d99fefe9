// Command ironlb-ccm is a cloud-controller-manager that runs ironlb's cloud
// provider: the standard service controller hands every type: LoadBalancer
// Service an address from ironlb's pools, and the cloud-node controller
// initializes nodes whose kubelet runs with --cloud-provider=external.
package main

import (
	"os"
	"slices"

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
	"k8s.io/klog/v2"

	"github.com/ironlb/ironlb/config"
	"github.com/ironlb/ironlb/provider"
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

	command := app.NewCloudControllerManagerCommand(ccmOptions, initCloud, controllerInitializers(), names.CCMControllerAliases(), flags, wait.NeverStop)
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
	// Prometheus and probes reach these without credentials, as they do
	// for kube-state-metrics and most add-ons.
	o.Authorization.AlwaysAllowPaths = append(o.Authorization.AlwaysAllowPaths, "/metrics")
}

func controllerInitializers() map[string]app.ControllerInitFuncConstructor {
	initializers := map[string]app.ControllerInitFuncConstructor{}
	for name, constructor := range app.DefaultInitFuncConstructors {
		if slices.Contains(controllers, name) {
			constructor.InitContext.ClientName = "ironlb-" + constructor.InitContext.ClientName
			initializers[name] = constructor
		}
	}
	return initializers
}

func initCloud(c *ccmconfig.CompletedConfig) cloudprovider.Interface {
	cfg := c.ComponentConfig.KubeCloudShared.CloudProvider
	cloud, err := cloudprovider.InitCloudProvider(cfg.Name, cfg.CloudConfigFile)
	if err != nil || cloud == nil {
		klog.Fatalf("cloud provider %q could not be initialized (ironlb-ccm runs only --cloud-provider=%s): %v", cfg.Name, provider.ProviderName, err)
	}
	return cloud
}
