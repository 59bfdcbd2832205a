// Package examples holds the configurations users copy to put jwtguard in
// front of their services: Envoy, Istio, Kubernetes, nginx and Caddy, one
// folder each with a README.
//
// The folder is a Go package only for its tests, which decode every
// example strictly into the real schemas (Envoy's and Istio's protos,
// Kubernetes' API types, nginx -t) so an example cannot drift into a
// configuration its proxy would reject. The same tests render the Helm
// chart of deploy/chart/jwtguard (chart_test.go) and build the container
// image of the Dockerfile without Docker (image_test.go).
package examples
