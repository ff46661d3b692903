// The bench's report: a Markdown summary and SVG charts, written by the bench itself (no browser,
// no chart library). Charts are plain line charts: throughput against the window W for each
// server, and latency distributions (percentile against latency, log scale).

export interface Series {
  name: string
  color: string
  points: [number, number][]
}

export interface ChartOptions {
  title: string
  xLabel: string
  yLabel: string
  xLog: boolean
  series: Series[]
  width?: number
  height?: number
}

const FONT = 'font-family="Helvetica, Arial, sans-serif"'

function niceMax(v: number): number {
  if (v <= 0) return 1
  const magnitude = 10 ** Math.floor(Math.log10(v))
  for (const step of [1, 2, 2.5, 5, 10]) if (step * magnitude >= v) return step * magnitude
  return 10 * magnitude
}

function formatTick(v: number): string {
  if (v >= 1e6) return `${+(v / 1e6).toFixed(1)}M`
  if (v >= 1e3) return `${+(v / 1e3).toFixed(1)}k`
  return `${+v.toFixed(1)}`
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

export function lineChart(o: ChartOptions): string {
  const width = o.width ?? 720
  const height = o.height ?? 420
  const left = 80
  const right = 210
  const top = 50
  const bottom = 60
  const plotW = width - left - right
  const plotH = height - top - bottom
  const xs = o.series.flatMap((s) => s.points.map((p) => p[0])).filter((x) => !o.xLog || x > 0)
  const ys = o.series.flatMap((s) => s.points.map((p) => p[1]))
  const xMin = o.xLog ? 10 ** Math.floor(Math.log10(Math.min(...xs))) : 0
  const xMax = o.xLog ? 10 ** Math.ceil(Math.log10(Math.max(...xs))) : niceMax(Math.max(...xs))
  const yMax = niceMax(Math.max(...ys))
  const px = (x: number) => left + (o.xLog ? (Math.log10(x) - Math.log10(xMin)) / (Math.log10(xMax) - Math.log10(xMin)) : (x - xMin) / (xMax - xMin)) * plotW
  const py = (y: number) => top + plotH - (y / yMax) * plotH

  const parts: string[] = []
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`)
  parts.push(`<rect width="${width}" height="${height}" fill="white"/>`)
  parts.push(`<text x="${width / 2}" y="28" text-anchor="middle" font-size="16" font-weight="bold" ${FONT}>${escapeXml(o.title)}</text>`)
  for (let i = 0; i <= 5; i++) {
    const y = (yMax * i) / 5
    parts.push(`<line x1="${left}" y1="${py(y)}" x2="${left + plotW}" y2="${py(y)}" stroke="#e5e5e5"/>`)
    parts.push(`<text x="${left - 8}" y="${py(y) + 4}" text-anchor="end" font-size="12" ${FONT}>${formatTick(y)}</text>`)
  }
  const xTicks: number[] = []
  if (o.xLog) for (let x = xMin; x <= xMax * 1.0001; x *= 10) xTicks.push(x)
  else for (let i = 0; i <= 5; i++) xTicks.push(xMin + ((xMax - xMin) * i) / 5)
  for (const x of xTicks) {
    parts.push(`<line x1="${px(x)}" y1="${top}" x2="${px(x)}" y2="${top + plotH}" stroke="#f0f0f0"/>`)
    parts.push(`<text x="${px(x)}" y="${top + plotH + 18}" text-anchor="middle" font-size="12" ${FONT}>${formatTick(x)}</text>`)
  }
  parts.push(`<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#888"/>`)
  parts.push(`<text x="${left + plotW / 2}" y="${height - 16}" text-anchor="middle" font-size="13" ${FONT}>${escapeXml(o.xLabel)}</text>`)
  parts.push(`<text x="18" y="${top + plotH / 2}" text-anchor="middle" font-size="13" transform="rotate(-90 18 ${top + plotH / 2})" ${FONT}>${escapeXml(o.yLabel)}</text>`)
  o.series.forEach((s, i) => {
    const pts = s.points.filter((p) => !o.xLog || p[0] > 0)
    if (pts.length === 0) return
    parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2.5" points="${pts.map((p) => `${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join(' ')}"/>`)
    if (pts.length <= 12) for (const p of pts) parts.push(`<circle cx="${px(p[0]).toFixed(1)}" cy="${py(p[1]).toFixed(1)}" r="4" fill="${s.color}"/>`)
    const ly = top + 12 + i * 22
    parts.push(`<line x1="${left + plotW + 14}" y1="${ly}" x2="${left + plotW + 38}" y2="${ly}" stroke="${s.color}" stroke-width="3"/>`)
    parts.push(`<text x="${left + plotW + 44}" y="${ly + 4}" font-size="12" ${FONT}>${escapeXml(s.name)}</text>`)
  })
  parts.push('</svg>')
  return parts.join('\n') + '\n'
}

export function markdownTable(header: string[], rows: (string | number)[][]): string {
  const align = header.map((_, i) => (i === 0 ? '---' : '---:'))
  return [header, align, ...rows.map((r) => r.map(String))].map((r) => `| ${r.join(' | ')} |`).join('\n')
}

export function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}
