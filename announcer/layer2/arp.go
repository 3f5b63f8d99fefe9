package layer2

import (
	"bytes"
	"net"
	"net/netip"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"golang.org/x/net/bpf"

	"github.com/ironlb/ironlb/announcer/neighbor"
)

// Offsets into an untagged Ethernet frame carrying ARP.
const (
	ethHeaderLen = 14
	arpOpOffset  = ethHeaderLen + 6
)

// Values of skb->pkt_type (linux/if_packet.h). Frames of a higher type were
// sent by this host (OUTGOING), looped back, or addressed to another host
// and only seen because the interface is promiscuous: none is a question to
// answer.
const pktTypeMulticast = 2

// acceptFrame is the BPF return value that keeps a whole frame.
const acceptFrame = 0xffff

// arpFilter admits ARP requests received by this host. Our own gratuitous
// requests come back to packet sockets as OUTGOING and are dropped here, so
// we never answer ourselves.
func arpFilter() ([]bpf.RawInstruction, error) {
	return bpf.Assemble([]bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtType},
		bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: pktTypeMulticast, SkipTrue: 3},
		bpf.LoadAbsolute{Off: arpOpOffset, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(arp.OperationRequest), SkipTrue: 1},
		bpf.RetConstant{Val: acceptFrame},
		bpf.RetConstant{Val: 0},
	})
}

// arpVerdict is what a received ARP frame asks of us.
type arpVerdict struct {
	// reply is the frame to send, nil if the request is not for us.
	reply []byte
	// target is the address asked for.
	target netip.Addr
	// requester is the hardware address the reply goes to.
	requester net.HardwareAddr
	// conflict is set when another host announced an address we own.
	conflict net.HardwareAddr
}

// answerARP decides how to respond to the Ethernet frame b, given our MAC and
// the set of owned addresses.
func answerARP(b []byte, mac net.HardwareAddr, owns func(netip.Addr) bool) (arpVerdict, error) {
	req, ok := parseARPRequest(b)
	if !ok || !owns(req.TargetIP) {
		return arpVerdict{}, nil
	}
	if bytes.Equal(req.SenderHardwareAddr, mac) {
		return arpVerdict{}, nil
	}
	if req.SenderIP == req.TargetIP {
		// An announcement, not a question: someone else claims the address.
		return arpVerdict{target: req.TargetIP, conflict: req.SenderHardwareAddr}, nil
	}
	reply, err := neighbor.ARPFrame(arp.OperationReply, mac, req.TargetIP, req.SenderHardwareAddr, req.SenderIP, req.SenderHardwareAddr)
	if err != nil {
		return arpVerdict{}, err
	}
	return arpVerdict{reply: reply, target: req.TargetIP, requester: req.SenderHardwareAddr}, nil
}

// parseARPRequest returns the Ethernet/IPv4 ARP request in frame b.
func parseARPRequest(b []byte) (*arp.Packet, bool) {
	var f ethernet.Frame
	if err := f.UnmarshalBinary(b); err != nil || f.EtherType != ethernet.EtherTypeARP {
		return nil, false
	}
	var p arp.Packet
	if err := p.UnmarshalBinary(f.Payload); err != nil {
		return nil, false
	}
	if p.HardwareType != 1 || p.ProtocolType != uint16(ethernet.EtherTypeIPv4) ||
		p.HardwareAddrLength != 6 || p.IPLength != 4 || p.Operation != arp.OperationRequest {
		return nil, false
	}
	if !isUnicastMAC(p.SenderHardwareAddr) {
		// Nowhere sensible to send the answer.
		return nil, false
	}
	return &p, true
}

// isUnicastMAC reports whether m is a non-zero, non-group Ethernet address.
func isUnicastMAC(m net.HardwareAddr) bool {
	return len(m) == 6 && m[0]&1 == 0 && !bytes.Equal(m, make(net.HardwareAddr, 6))
}
