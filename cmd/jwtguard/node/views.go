package node

import (
	"context"
	"sort"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/envoy/detect"
	"github.com/jwtguard/jwtguard/envoy/keywatch"
)

// keysView is GET /v1/keys: every issuer's key set as the key-rotation
// watch sees it, and the alarms active now.
func (n *Node) keysView(context.Context) (any, error) {
	return struct {
		KeySets []authz.KeySetInfo         `json:"key_sets"`
		Alarms  map[string][]keywatch.Kind `json:"alarms"`
	}{n.checker.Load().KeySets(), n.keys.Active()}, nil
}

// detectorView is one running detector's settings.
type detectorView struct {
	Name      detect.Name   `json:"name"`
	Policy    detect.Policy `json:"policy"`
	Threshold int           `json:"threshold"`
	Window    string        `json:"window"`
	BlockFor  string        `json:"block_for,omitempty"`
}

// detectorsView is GET /v1/detectors: the detectors that run, their
// policies, and the blocks in force on this node.
func (n *Node) detectorsView(context.Context) (any, error) {
	out := struct {
		DryRun    bool                  `json:"dry_run"`
		Detectors []detectorView        `json:"detectors"`
		Blocks    []detect.BlockInForce `json:"blocks"`
	}{DryRun: n.cfg.Detectors.DryRun, Detectors: []detectorView{}, Blocks: []detect.BlockInForce{}}
	for name, dc := range n.cfg.Detectors.Detectors {
		v := detectorView{Name: name, Policy: dc.Policy, Threshold: dc.Threshold, Window: dc.Window.String()}
		if dc.BlockFor > 0 {
			v.BlockFor = dc.BlockFor.String()
		}
		out.Detectors = append(out.Detectors, v)
	}
	sort.Slice(out.Detectors, func(i, j int) bool { return out.Detectors[i].Name < out.Detectors[j].Name })
	if n.detectors != nil {
		if bs := n.detectors.Blocks(time.Now()); bs != nil {
			out.Blocks = bs
		}
	}
	return out, nil
}
