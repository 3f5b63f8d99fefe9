package announcer

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/ironlb/ironlb/config"
)

// Informers are the caches a speaker reads: the cluster's Services,
// EndpointSlices and Nodes, and the two ConfigMaps of its config.
type Informers struct {
	cluster, config, kept informers.SharedInformerFactory
}

// Start starts the caches that are not running yet; they stop with stop.
// Speakers sharing them start them in Run too, which is then a no-op.
func (i *Informers) Start(stop <-chan struct{}) {
	for _, f := range []informers.SharedInformerFactory{i.cluster, i.config, i.kept} {
		f.Start(stop)
	}
}

// NewInformers returns the caches of one speaker, or of several that share
// them.
func NewInformers(client kubernetes.Interface, configNamespace, configName string) *Informers {
	// One ConfigMap each: a field selector names one object, and RBAC
	// grants only these two.
	oneConfigMap := func(name string) informers.SharedInformerFactory {
		return informers.NewSharedInformerFactoryWithOptions(client, 0,
			informers.WithNamespace(configNamespace),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) {
				o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
			}))
	}
	return &Informers{cluster: informers.NewSharedInformerFactory(client, 0),
		config: oneConfigMap(configName), kept: oneConfigMap(config.LastGoodName(configName))}
}

// startCaches starts the informers and waits until the caches hold the
// initial lists and the handlers that index them (the slices by Service)
// have seen them: a sync reads both.
func (s *Speaker) startCaches(ctx context.Context) error {
	for _, f := range s.factories {
		f.Start(ctx.Done())
	}
	if !cache.WaitFor(ctx, "ironlb-speaker caches", s.synced...) {
		return fmt.Errorf("caches did not sync")
	}
	return nil
}
