package loadgen

import (
	"bufio"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
)

// Chart geometry, in SVG user units.
const (
	chartW, chartH            = 820, 500
	padLeft, padRight         = 80, 30
	padTop, padBottom         = 50, 60
	plotW                     = chartW - padLeft - padRight
	plotH                     = chartH - padTop - padBottom
	xMin, xMax        float64 = 0.30103, 4 // log10(1/(1-p)) at p = 50% and 99.99%
)

// palette colors the series, in order.
var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#7f7f7f"}

// WriteSVG draws the latency-percentile curves of results on one chart:
// the percentile on a log axis from 50 to 99.99, the latency on a linear one.
func WriteSVG(w io.Writer, results []*Result) error {
	if len(results) == 0 {
		return errors.New("plot: no results")
	}
	top := 0.0
	for _, r := range results {
		for _, p := range r.Curve {
			top = math.Max(top, p.Micros)
		}
	}
	top = niceCeil(top)
	unit, scale := "µs", 1.0
	if top >= 2000 {
		unit, scale = "ms", 1000
	}
	xOf := func(pct float64) float64 {
		x := math.Log10(1 / (1 - math.Min(pct, 99.99)/100))
		return padLeft + (x-xMin)/(xMax-xMin)*plotW
	}
	yOf := func(us float64) float64 { return padTop + plotH - us/top*plotH }

	bw := bufio.NewWriter(w)
	p := func(format string, a ...any) { fmt.Fprintf(bw, format, a...) }
	p(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", chartW, chartH, chartW, chartH)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p(`<text x="%d" y="24" font-size="15" font-weight="bold">Check latency by percentile</text>`+"\n", padLeft)

	// Grid and axes.
	for i := 0; i <= 5; i++ {
		v := top * float64(i) / 5
		y := yOf(v)
		p(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", padLeft, y, padLeft+plotW, y)
		p(`<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", padLeft-6, y+4, trimFloat(v/scale))
	}
	for _, pct := range []float64{50, 90, 99, 99.9, 99.99} {
		x := xOf(pct)
		p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>`+"\n", x, padTop, x, padTop+plotH)
		p(`<text x="%.1f" y="%d" text-anchor="middle">p%s</text>`+"\n", x, padTop+plotH+18, trimFloat(pct))
	}
	p(`<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>`+"\n", padLeft, padTop, plotW, plotH)
	p(`<text x="%d" y="%d" text-anchor="middle">percentile (log scale)</text>`+"\n", padLeft+plotW/2, chartH-14)
	p(`<text x="18" y="%d" text-anchor="middle" transform="rotate(-90 18 %d)">latency (%s)</text>`+"\n", padTop+plotH/2, padTop+plotH/2, unit)

	// Series and legend.
	for i, r := range results {
		color := palette[i%len(palette)]
		var pts []string
		for _, pt := range r.Curve {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", xOf(pt.Percentile), yOf(pt.Micros)))
		}
		p(`<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", color, strings.Join(pts, " "))
		ly := padTop + 16 + 18*i
		p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"/>`+"\n", padLeft+12, ly-4, padLeft+36, ly-4, color)
		p(`<text x="%d" y="%d">%s</text>`+"\n", padLeft+42, ly, escape(fmt.Sprintf("%s (%s, %.0f req/s, p99 %.0f µs)", r.Label, r.Mix, r.Throughput, r.Latency.P99)))
	}
	p("</svg>\n")
	return bw.Flush()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*e >= v {
			return m * e
		}
	}
	return 10 * e
}

func trimFloat(v float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
}

func escape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
