"""The lesson book: every lab's explanation, figures and measured claims in one offline HTML page."""
import html
import os
from pathlib import Path

STYLE = """
body { font-family: sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em; line-height: 1.55;
       color: #222; }
h1 { border-bottom: 2px solid #444; } h2 { margin-top: 2.5em; border-bottom: 1px solid #bbb; }
nav li { margin: 0.15em 0; }
table { border-collapse: collapse; margin: 1em 0; width: 100%; }
td, th { border: 1px solid #ccc; padding: 0.35em 0.6em; vertical-align: top; text-align: left; }
.pass { color: #fff; background: #2a7d2a; font-weight: bold; text-align: center; }
.fail { color: #fff; background: #b22222; font-weight: bold; text-align: center; }
code, pre { background: #f3f3f3; padding: 0.1em 0.3em; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
.note { color: #666; }
"""

WORDS = {
    "en": {"title": "fastnn labs: the course notes, measured", "claim": "claim", "result": "result",
           "measured": "what was measured", "rerun": "run it again", "unavailable": "could not run",
           "intro": "Each lesson below ran its experiment and checked the claims of the course notes "
                    "against what it measured. Every number on this page was measured, not written by hand.",
           "quick": "quick mode (small data, few epochs)", "full": "full mode",
           "summary": "{held} of {total} claims hold"},
    "ko": {"title": "fastnn 실습: 강의 노트를 직접 측정하기", "claim": "주장", "result": "결과",
           "measured": "측정한 내용", "rerun": "다시 실행하기", "unavailable": "실행할 수 없음",
           "intro": "아래의 각 실습은 실험을 실행하고, 강의 노트의 주장을 측정값과 비교했습니다. "
                    "이 페이지의 모든 숫자는 손으로 쓴 것이 아니라 측정한 값입니다.",
           "quick": "빠른 모드(작은 데이터, 적은 에폭)", "full": "전체 모드",
           "summary": "주장 {total}개 중 {held}개 성립"},
}


def write_book(directory, results, lang="en", quick=False, unavailable=None):
    """Write ``directory/index.html`` from LabResults (their figures must be inside ``directory``)
    and ``unavailable`` ({lab name: why it could not run}); returns the path. No external files,
    fonts or scripts: the page works offline."""
    w = WORDS[lang]
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    e = html.escape
    held = sum(sum(r.claims.values()) for r in results)
    total = sum(len(r.claims) for r in results)
    flag = " --quick" if quick else ""
    lang_flag = "" if lang == "en" else f" --lang {lang}"
    parts = [f"<!DOCTYPE html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\">",
             f"<title>{e(w['title'])}</title><style>{STYLE}</style></head><body>",
             f"<h1>{e(w['title'])}</h1><p>{e(w['intro'])}</p>",
             f"<p class=\"note\">{e(w['quick'] if quick else w['full'])}; "
             f"{e(w['summary'].format(held=held, total=total))}.</p><nav><ol>"]
    for r in results:
        mark = "✔" if r.passed else "✘"
        parts.append(f"<li><a href=\"#{e(r.name)}\">{e(r.name)}</a>: {e(r.title)} {mark}</li>")
    for name in unavailable or {}:
        parts.append(f"<li><a href=\"#{e(name)}\">{e(name)}</a> ({e(w['unavailable'])})</li>")
    parts.append("</ol></nav>")
    for r in results:
        parts.append(f"<h2 id=\"{e(r.name)}\">{e(r.name)}: {e(r.title)}</h2>")
        parts += [f"<p>{e(p.strip())}</p>" for p in r.text.split("\n\n") if p.strip()]
        parts.append(f"<table><tr><th>{e(w['result'])}</th><th>{e(w['claim'])}</th>"
                     f"<th>{e(w['measured'])}</th></tr>")
        for key, ok in r.claims.items():
            parts.append(f"<tr><td class=\"{'pass' if ok else 'fail'}\">{'PASS' if ok else 'FAIL'}</td>"
                         f"<td><code>{e(key)}</code></td><td>{e(r.details[key])}</td></tr>")
        parts.append("</table>")
        for fig in r.figures:
            rel = Path(os.path.relpath(fig, directory)).as_posix()
            parts.append(f"<img src=\"{e(rel)}\" alt=\"{e(Path(fig).stem)}\">")
        if r.figures_skipped:
            parts.append(f"<p class=\"note\">{e(r.figures_skipped)}</p>")
        parts.append(f"<p>{e(w['rerun'])}: <code>python -m fastnn lab {e(r.name)}{flag}{lang_flag}</code></p>")
    for name, why in (unavailable or {}).items():
        parts.append(f"<h2 id=\"{e(name)}\">{e(name)}</h2><p class=\"note\">{e(w['unavailable'])}: "
                     f"{e(why)}</p>")
    parts.append("</body></html>\n")
    path = directory / "index.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
