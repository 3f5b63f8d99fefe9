package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Group and version of ironlb's API.
const (
	GroupName = "ironlb.io"
	Version   = "v1alpha1"
)

// SpeakerStatusResource is the resource of SpeakerStatus objects.
var SpeakerStatusResource = schema.GroupVersionResource{Group: GroupName, Version: Version, Resource: "speakerstatuses"}

// SpeakerStatusKind is their kind.
var SpeakerStatusKind = schema.GroupVersionKind{Group: GroupName, Version: Version, Kind: "SpeakerStatus"}

// LabelState mirrors status.state, so the speaker that marks departed
// speakers Unreachable finds the Running objects with a metadata-only list
// instead of reading every node's full object.
const LabelState = "ironlb.io/state"

// SpeakerStatus is what the speaker on one node announces right now. It is
// cluster-scoped and named after the node, written only by that node's
// speaker (and emptied by another speaker when this one leaves the
// membership), and owned by the Node so it goes when the node does.
type SpeakerStatus struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Status SpeakerStatusStatus `json:"status,omitempty"`
}

// SpeakerState says whether a speaker is serving.
type SpeakerState string

const (
	// SpeakerRunning: the speaker is up and this object is its current view.
	SpeakerRunning SpeakerState = "Running"
	// SpeakerStopped: the speaker shut down cleanly and withdrew everything.
	SpeakerStopped SpeakerState = "Stopped"
	// SpeakerUnreachable: the other speakers lost contact with this one
	// (node down, speaker killed, or memberlist cut off) and took over its
	// addresses; what it announced was cleared by one of them.
	SpeakerUnreachable SpeakerState = "Unreachable"
	// SpeakerPartitioned: the speaker reaches the API but is on the smaller
	// side of a memberlist partition; it announces only what the other side
	// cannot serve (listed here) until it meets the others again. It is not
	// swept, and does not sweep, so the two sides leave each other's objects
	// alone.
	SpeakerPartitioned SpeakerState = "Partitioned"
)

// SpeakerStatusStatus is the observed state of one node's speaker.
type SpeakerStatusStatus struct {
	State SpeakerState `json:"state"`
	// Reason explains State when it is not Running.
	Reason string `json:"reason,omitempty"`
	// MarkedBy names the speaker that marked this one Unreachable.
	MarkedBy string `json:"markedBy,omitempty"`
	// Since is when the speaker entered State. When it last wrote is the
	// API server's to say (metadata.managedFields[].time): a takeover's
	// patch then carries what moved, not a new time as well.
	Since metav1.Time `json:"since"`
	// Members counts the speakers this one sees alive through memberlist,
	// itself included. Only the speaker that sweeps (the alive one with the
	// lowest name) counts them, so a membership change costs one write
	// rather than one per node. Partitions are settled by the side Lease
	// (announcer/report/side.go), not by these objects.
	Members int `json:"members,omitempty"`
	// AnnouncedAddresses counts Announcements, and EstablishedSessions the
	// established BGPSessions: kubectl's columns cannot count lists.
	AnnouncedAddresses  int `json:"announcedAddresses"`
	EstablishedSessions int `json:"establishedSessions"`
	// Announcements are the addresses this node attracts traffic for,
	// sorted by address, except those BGPPools stands for.
	Announcements []Announcement `json:"announcements,omitempty"`
	// BGPPools are the bgp pools this node advertises, sorted by name. It
	// advertises every address of such a pool whose Services all have
	// externalTrafficPolicy Cluster, as does every node the pool selects,
	// so those addresses are not listed one by one: the list would repeat
	// on every node, grow with the cluster's addresses (past etcd's object
	// limit at about 11,000) and cost every node a write per Service.
	// Announcements lists the bgp addresses that depend on the node: those
	// of Local Services (advertised where a ready endpoint is) and those
	// announced from a kept config.
	BGPPools []BGPPool `json:"bgpPools,omitempty"`
	// BGPSessions are this node's sessions with the configured routers,
	// sorted by peer name.
	BGPSessions []BGPSession `json:"bgpSessions,omitempty"`
}

// Announcement is one address this node announces.
type Announcement struct {
	IP string `json:"ip"`
	// Mode is the pool's mode: layer2, vip or bgp.
	Mode string `json:"mode"`
	// Interface is where layer2 and vip answer or hold the address; empty
	// for bgp and for vip's off-subnet interface.
	Interface string `json:"interface,omitempty"`
	// Services hold the address (several when it is shared), namespace/name.
	Services []string `json:"services"`
	// Since is when this node started announcing it.
	Since metav1.Time `json:"since"`
}

// BGPPool is one bgp pool this node advertises.
type BGPPool struct {
	// Pool is the name of pools[] in ironlb-config.
	Pool string `json:"pool"`
	// Since is when this node started advertising it.
	Since metav1.Time `json:"since"`
}

// BGPSessionState is a session's state as the speaker sees it.
type BGPSessionState string

const (
	BGPEstablished BGPSessionState = "Established"
	BGPDown        BGPSessionState = "Down"
	// BGPConnecting: configured, not established yet, no failure seen.
	BGPConnecting BGPSessionState = "Connecting"
)

// BGPSession is this node's session with one router.
type BGPSession struct {
	// Peer is the name of bgp.peers[] in ironlb-config.
	Peer    string          `json:"peer"`
	Address string          `json:"address"`
	State   BGPSessionState `json:"state"`
	// Reason is why the session is down, or how it came up.
	Reason string `json:"reason,omitempty"`
	// Since is when the session entered State.
	Since metav1.Time `json:"since"`
}

// ToUnstructured turns a SpeakerStatus into the form the dynamic client
// sends, with its apiVersion and kind set.
func ToUnstructured(s *SpeakerStatus) (*unstructured.Unstructured, error) {
	s.SetGroupVersionKind(SpeakerStatusKind)
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(s)
	if err != nil {
		return nil, err
	}
	return &unstructured.Unstructured{Object: m}, nil
}

// FromUnstructured reads a SpeakerStatus from the dynamic client's form.
func FromUnstructured(u *unstructured.Unstructured) (*SpeakerStatus, error) {
	var s SpeakerStatus
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &s); err != nil {
		return nil, err
	}
	return &s, nil
}
