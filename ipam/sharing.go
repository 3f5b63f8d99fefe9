package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// Port is a service port; two sharing services collide when they use the same
// Protocol and Port.
type Port struct {
	Protocol string
	Port     int32
}

// Sharing says with whom a service may share an IP. Key "" means the service
// shares with nobody.
type Sharing struct {
	Key   string
	Ports []Port
}

// compatible reports whether services with sharings s and o may hold the same
// address: the same non-empty key, and no port both use. TCP/53 and UDP/53
// are different ports.
func (s Sharing) compatible(o Sharing) bool {
	if s.Key == "" || s.Key != o.Key {
		return false
	}
	_, collide := collision(s.Ports, o.Ports)
	return !collide
}

// clone copies the ports, so that the allocator's record cannot be changed
// through the caller's slice.
func (s Sharing) clone() Sharing {
	s.Ports = slices.Clone(s.Ports)
	return s
}

func collision(a, b []Port) (Port, bool) {
	for _, p := range a {
		if slices.Contains(b, p) {
			return p, true
		}
	}
	return Port{}, false
}

// sharingError explains why a service with sharing s may not share addr with
// other, which holds it.
func sharingError(addr netip.Addr, s Sharing, other holder) error {
	if s.Key != "" && s.Key == other.sharing.Key {
		if p, ok := collision(s.Ports, other.sharing.Ports); ok {
			return fmt.Errorf("port %s/%d collides with %s on %s", p.Protocol, p.Port, other.service, addr)
		}
	}
	msg := fmt.Sprintf("%s is held by %s", addr, other.service)
	if s.Key != "" && other.sharing.Key != "" {
		msg += fmt.Sprintf(" (sharing key %q differs)", other.sharing.Key)
	}
	return errors.New(msg)
}
