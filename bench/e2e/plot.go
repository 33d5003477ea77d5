package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"strconv"
)

var (
	colBG       = color.RGBA{255, 255, 255, 255}
	colAxis     = color.RGBA{60, 60, 60, 255}
	colGrid     = color.RGBA{225, 225, 225, 255}
	colPhase    = color.RGBA{170, 170, 170, 255}
	colSettled  = color.RGBA{31, 119, 180, 255}
	colConsumed = color.RGBA{255, 127, 14, 255}
	colLag      = color.RGBA{214, 39, 40, 255}
)

// series is one line of a panel.
type series struct {
	name string
	col  color.RGBA
	x, y []float64
}

// plotTimeline draws the run as a PNG: riskd's consumed and settled
// (stored) events per second on top, its consumer lag below, with the
// harness's phases marked, from the samples taken of /metrics.
func plotTimeline(path string, samples []sample) error {
	const w, h = 1200, 720
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), &image.Uniform{colBG}, image.Point{}, draw.Src)
	var rate, consumed, lag series
	rate = series{name: "stored/s", col: colSettled}
	consumed = series{name: "consumed/s", col: colConsumed}
	lag = series{name: "consumer lag", col: colLag}
	for i := 1; i < len(samples); i++ {
		a, b := samples[i-1], samples[i]
		dt := b.T - a.T
		if dt <= 0 {
			continue
		}
		rate.x, rate.y = append(rate.x, b.T), append(rate.y, math.Max(0, (b.Settled-a.Settled)/dt))
		consumed.x, consumed.y = append(consumed.x, b.T), append(consumed.y, math.Max(0, (b.Consumed-a.Consumed)/dt))
	}
	for _, s := range samples {
		lag.x, lag.y = append(lag.x, s.T), append(lag.y, s.Lag)
	}
	xmax := 1.0
	if len(samples) > 0 {
		xmax = math.Max(1, samples[len(samples)-1].T)
	}
	drawText(img, 70, 10, "riskd end to end: events per second and consumer lag over the run", colAxis)
	top := image.Rect(90, 50, w-30, 390)
	bottom := image.Rect(90, 440, w-30, h-60)
	panel(img, top, xmax, "events/s", []series{consumed, rate}, samples)
	panel(img, bottom, xmax, "lag (msgs)", []series{lag}, samples)
	drawText(img, (w-textWidth("time since riskd ready (s)"))/2, h-30, "time since riskd ready (s)", colAxis)

	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return fmt.Errorf("plot: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}

// panel draws axes, grid, phase boundaries, a legend and the lines.
func panel(img *image.RGBA, r image.Rectangle, xmax float64, ylabel string, ss []series, samples []sample) {
	ymax := 1.0
	for _, s := range ss {
		for _, v := range s.y {
			ymax = math.Max(ymax, v)
		}
	}
	ymax = niceCeil(ymax * 1.05)
	px := func(x float64) int { return r.Min.X + int(x/xmax*float64(r.Dx())) }
	py := func(y float64) int { return r.Max.Y - int(y/ymax*float64(r.Dy())) }

	for i := 0; i <= 4; i++ {
		y := ymax * float64(i) / 4
		hline(img, r.Min.X, r.Max.X, py(y), colGrid)
		label := humanize(y)
		drawText(img, r.Min.X-8-textWidth(label), py(y)-7, label, colAxis)
	}
	step := niceCeil(xmax / 10)
	for x := 0.0; x <= xmax; x += step {
		vline(img, px(x), r.Min.Y, r.Max.Y, colGrid)
		label := fmt.Sprintf("%.0f", x)
		drawText(img, px(x)-textWidth(label)/2, r.Max.Y+6, label, colAxis)
	}
	prev := ""
	for _, s := range samples {
		if s.Phase != prev {
			vline(img, px(s.T), r.Min.Y, r.Max.Y, colPhase)
			drawText(img, px(s.T)+4, r.Min.Y+4, s.Phase, colPhase)
			prev = s.Phase
		}
	}
	hline(img, r.Min.X, r.Max.X, r.Max.Y, colAxis)
	vline(img, r.Min.X, r.Min.Y, r.Max.Y, colAxis)
	drawText(img, r.Min.X, r.Min.Y-20, ylabel, colAxis)
	lx := r.Max.X - 10
	for i := len(ss) - 1; i >= 0; i-- {
		s := ss[i]
		lx -= textWidth(s.name) + 30
		fillRect(img, lx, r.Min.Y-18, 20, 10, s.col)
		drawText(img, lx+24, r.Min.Y-20, s.name, colAxis)
		for j := 1; j < len(s.x); j++ {
			line(img, px(s.x[j-1]), py(s.y[j-1]), px(s.x[j]), py(s.y[j]), s.col)
		}
	}
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// humanize prints axis values as 250, 1.5K, 2M.
func humanize(v float64) string {
	round := func(x float64) string { return strconv.FormatFloat(math.Round(x*10)/10, 'f', -1, 64) }
	switch {
	case v >= 1e6:
		return round(v/1e6) + "M"
	case v >= 1e3:
		return round(v/1e3) + "K"
	}
	return round(v)
}

func hline(img *image.RGBA, x0, x1, y int, c color.RGBA) {
	for x := x0; x <= x1; x++ {
		img.SetRGBA(x, y, c)
	}
}

func vline(img *image.RGBA, x, y0, y1 int, c color.RGBA) {
	for y := y0; y <= y1; y++ {
		img.SetRGBA(x, y, c)
	}
}

func fillRect(img *image.RGBA, x, y, w, h int, c color.RGBA) {
	draw.Draw(img, image.Rect(x, y, x+w, y+h), &image.Uniform{c}, image.Point{}, draw.Src)
}

// line draws a two-pixel-thick segment (Bresenham, doubled vertically).
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	err := dx + dy
	for {
		img.SetRGBA(x0, y0, c)
		img.SetRGBA(x0, y0+1, c)
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * err
		if e2 >= dy {
			err += dy
			x0 += sx
		}
		if e2 <= dx {
			err += dx
			y0 += sy
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v < 0:
		return -1
	case v > 0:
		return 1
	}
	return 0
}
