"""The report's look: colours, fonts and the page stylesheet, in one place."""

from __future__ import annotations

FONT_STACK = (
    '-apple-system, BlinkMacSystemFont, "Segoe UI", "PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", '
    '"Noto Sans CJK SC", "Noto Sans SC", "WenQuanYi Micro Hei", Roboto, "Helvetica Neue", Arial, sans-serif'
)
LAYER_COLORS = {
    "none": "#9aa5b1",
    "basic": "#8ecae6",
    "member_no_purchase": "#219ebc",
    "purchased": "#2a9d8f",
    "repurchase": "#e9a23b",
    "koc": "#e76f51",
}
PREVIOUS_COLOR = "#cbd2d9"
ACCENT = "#3b5bdb"

CHART_HEIGHT = 420

CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f4f6fa;color:#1f2933;font-family:__FONT__;font-size:15px;line-height:1.55}
header{background:linear-gradient(120deg,#243b6b,#3b5bdb);color:#fff;padding:28px 0 22px}
.wrap{max-width:1200px;margin:0 auto;padding:0 24px}
header h1{margin:0 0 6px;font-size:26px;font-weight:650;letter-spacing:.3px}
header .meta{display:flex;flex-wrap:wrap;gap:8px 18px;font-size:14px;opacity:.92}
header .meta b{font-weight:600}
header h1 .en{color:rgba(255,255,255,.78)}
nav{display:flex;flex-wrap:wrap;gap:6px;margin-top:16px}
nav a{color:#fff;text-decoration:none;font-size:13px;padding:3px 10px;border:1px solid rgba(255,255,255,.35);
border-radius:999px}
nav a:hover{background:rgba(255,255,255,.15)}
main{padding:22px 0 40px}
section{background:#fff;border-radius:14px;box-shadow:0 1px 3px rgba(15,23,42,.08),0 6px 18px rgba(15,23,42,.04);
padding:20px 22px;margin:0 0 20px}
section h2{margin:0 0 14px;font-size:19px;font-weight:650}
section h2 .en,.en{color:#52606d;font-weight:500}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(230px,1fr));gap:14px}
.kpi{border:1px solid #e4e7eb;border-radius:12px;padding:14px 16px;background:#fbfcfe}
.kpi .label{font-size:13px;color:#52606d}
.kpi .value{font-size:30px;font-weight:700;margin:4px 0 2px;font-variant-numeric:tabular-nums}
.kpi .sub{font-size:12.5px;color:#616e7c}
.delta{font-size:13.5px;font-weight:600;font-variant-numeric:tabular-nums}
.delta.up{color:#1a7f4b}.delta.down{color:#c92a2a}.delta.flat,.delta.none{color:#7b8794}
.stats{display:flex;flex-wrap:wrap;gap:10px;margin:0 0 12px}
.stat{background:#f1f4f9;border-radius:10px;padding:8px 12px;font-size:13px}
.stat b{display:block;font-size:17px;font-variant-numeric:tabular-nums}
.chart{width:100%;margin:6px 0 10px}
.note{font-size:13px;color:#616e7c;margin:6px 0}
.nodata{display:inline-block;background:#fff4e6;color:#a0522d;border-radius:8px;padding:4px 10px;font-size:13px}
table{border-collapse:collapse;width:100%;font-size:13.5px;margin-top:8px}
th,td{padding:7px 10px;border-bottom:1px solid #e4e7eb;text-align:right;font-variant-numeric:tabular-nums}
th{background:#f5f7fa;font-weight:600;color:#3e4c59}
th:first-child,td:first-child{text-align:left}
details summary{cursor:pointer;font-size:13px;color:__ACCENT__;margin-top:6px}
.cols{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:18px}
.cols h3{margin:0 0 6px;font-size:15px}
.cols ul{margin:0;padding-left:20px}.cols li{margin:4px 0}
footer{color:#7b8794;font-size:12.5px;text-align:center;padding:0 0 30px}
""".replace("__FONT__", FONT_STACK).replace("__ACCENT__", ACCENT)
