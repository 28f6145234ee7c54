"""Images, PDFs and files in prompts, from ``nbclaude.ask`` and an IPython shell.

Every test sends through the real SDK to the fake server and reads back the request body
it recorded, block by block. The kernel tests (``test_attachments_kernel.py``) check the
same from a notebook: the view, the saved outputs, ``-f``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import matplotlib
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.display import Image as IPythonImage
from PIL import Image

from nbclaude import ClaudeError, RequestError, Session, ask
from nbclaude.attachments import AttachmentError, prompt_parts
from nbclaude.keys import SecretError
from nbclaude.testing import FakeServer, error_after, text_reply

from .attachment_files import PDF, block_types, decoded_image, image_bytes
from .conftest import TEST_KEY, run

matplotlib.use("Agg")
import matplotlib.pyplot as plt


@pytest.fixture
def session(api_env: FakeServer) -> Iterator[Session]:
    chosen = Session()
    yield chosen
    chosen.close()


def sent(server: FakeServer) -> list[dict[str, Any]]:
    """The content of the last user message the server received."""
    content: list[dict[str, Any]] = server.requests[-1].body["messages"][-1]["content"]
    return content


def test_images_paths_and_text_go_in_the_order_given(
    api_env: FakeServer, session: Session, tmp_path: Path
) -> None:
    scan = tmp_path / "scan.jpg"
    scan.write_bytes(image_bytes(300, 200, "JPEG"))
    paper = tmp_path / "paper.pdf"
    paper.write_bytes(PDF)
    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\n\nThe curve flattens after x = 3.\n")
    plot = image_bytes(640, 480)

    reply = ask(
        ["Here is my plot: ", plot, "\nand the paper ", paper, "\n", notes, "What now?"],
        files=[scan],
        session=session,
        display="none",
    )

    assert reply.complete
    content = sent(api_env)
    assert block_types(content) == [
        "image:image/jpeg",
        "text",
        "image:image/png",
        "text",
        "document:application/pdf",
        "text",
        "text",
    ]
    assert decoded_image(content[0]).size == (300, 200)
    assert content[1]["text"] == "Here is my plot: "
    assert base64.b64decode(content[2]["source"]["data"]) == plot  # sent as it came
    assert content[3]["text"] == "\nand the paper "
    assert base64.b64decode(content[4]["source"]["data"]) == PDF
    assert content[4]["title"] == "paper.pdf"
    # The newline between the PDF and the notes is whitespace only: the API refuses that.
    assert content[5]["text"] == (
        '<file name="notes.md">\n# Notes\n\nThe curve flattens after x = 3.\n\n</file>'
    )
    assert content[6]["text"] == "What now?"


def test_a_large_image_is_downscaled_to_1568_pixels_keeping_its_aspect_and_format(
    api_env: FakeServer, session: Session, tmp_path: Path
) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(image_bytes(3000, 2000, "JPEG"))
    tall = image_bytes(1000, 4000)

    ask(["Compare", photo, tall], session=session, display="none")

    content = sent(api_env)
    assert block_types(content) == ["text", "image:image/jpeg", "image:image/png"]
    assert decoded_image(content[1]).size == (1568, 1045)
    assert decoded_image(content[1]).format == "JPEG"
    assert decoded_image(content[2]).size == (392, 1568)


def test_pil_images_figures_and_ipython_images_are_images(
    api_env: FakeServer, session: Session
) -> None:
    figure, axes = plt.subplots()  # 6.4 x 4.8 inches at 100 dpi
    axes.plot([1, 2, 3, 3.2, 3.3])
    translucent = Image.new("RGBA", (50, 40), (255, 0, 0, 128))
    shown = IPythonImage(data=image_bytes(30, 20, "GIF"))

    ask([figure, translucent, shown, "What are these?"], session=session, display="none")
    plt.close(figure)

    content = sent(api_env)
    assert block_types(content) == ["image:image/png", "image:image/png", "image:image/gif", "text"]
    assert decoded_image(content[0]).size == (640, 480)
    assert decoded_image(content[1]).mode == "RGBA"
    assert decoded_image(content[2]).size == (30, 20)


def test_a_text_prompt_without_attachments_is_sent_as_a_string(
    api_env: FakeServer, session: Session
) -> None:
    ask("Just text.", session=session, display="none")
    assert sent(api_env) == "Just text."  # type: ignore[comparison-overlap]


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda d: [d / "missing.png"], r"prompt\[0\]: .*missing\.png: no such file"),
        (lambda d: ["x", 3.5], r"prompt\[1\]: a float is not text, an image or a path"),
        (lambda d: ["x", IPythonImage(url="https://example.com/a.png")], "holds no bytes"),
    ],
)
def test_what_cannot_be_attached_is_refused_before_sending(
    api_env: FakeServer, session: Session, tmp_path: Path, make: Any, expected: str
) -> None:
    with pytest.raises(AttachmentError, match=expected) as raised:
        ask(make(tmp_path), session=session, display="none")
    assert "\n" not in str(raised.value)
    assert api_env.requests == []


def test_a_templated_path_that_is_not_a_file_is_its_text(
    ip: InteractiveShell, api_env: FakeServer, tmp_path: Path
) -> None:
    # A Path to nowhere (an output to write, say) is text, like any other value; a Path to
    # a file is the file.
    ip.user_ns["out"] = tmp_path / "out.csv"
    ip.user_ns["source"] = _write(tmp_path / "in.csv", b"a,b\n1,2\n")
    result, _ = run(ip, "%%claude\nRead {{ source }} and write to {{ out }}")
    assert result.success
    assert sent(api_env) == [
        {"type": "text", "text": "Read "},
        {"type": "text", "text": '<file name="in.csv">\na,b\n1,2\n\n</file>'},
        {"type": "text", "text": f" and write to {tmp_path / 'out.csv'}\n"},
    ]


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (lambda d: [d / "nope.pdf"], r"files: .*nope\.pdf: no such file"),
        (lambda d: [d], "is a folder, not a file"),
        (lambda d: [_write(d / "blob.bin", bytes(range(256)) * 4)], "not an image"),
        (lambda d: [42], "files: a int is not a path or an image"),
    ],
)
def test_files_that_cannot_be_sent_are_refused_in_one_line(
    api_env: FakeServer, session: Session, tmp_path: Path, files: Any, expected: str
) -> None:
    with pytest.raises(RequestError, match=expected) as raised:
        ask("Read this.", files=files(tmp_path), session=session, display="none")
    assert "\n" not in str(raised.value)
    assert api_env.requests == []


def test_a_file_that_holds_the_key_is_refused(
    api_env: FakeServer, session: Session, tmp_path: Path
) -> None:
    env = _write(tmp_path / ".env", f"ANTHROPIC_API_KEY={TEST_KEY}\n".encode())
    with pytest.raises(SecretError, match="contains your API key") as raised:
        ask("Check my settings.", files=[env], session=session, display="none")
    assert TEST_KEY not in str(raised.value)
    assert api_env.requests == []


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_other_image_formats_are_converted_to_png(
    api_env: FakeServer, session: Session, tmp_path: Path
) -> None:
    bitmap = tmp_path / "old.bmp"
    bitmap.write_bytes(image_bytes(40, 30, "BMP"))
    ask("What is it?", files=[bitmap], session=session, display="none")
    content = sent(api_env)
    assert block_types(content) == ["image:image/png", "text"]
    assert decoded_image(content[0]).size == (40, 30)


# --------------------------------------------------------------------------- the API's limits


def test_an_image_over_5_mb_in_base64_is_refused_naming_the_limit(
    api_env: FakeServer, session: Session
) -> None:
    noise = image_bytes(1500, 1200, noise=True)  # does not compress: about 5.4 MB
    with pytest.raises(AttachmentError, match=r"\[image 1500×1200 PNG, 5\.\d MB\]: .*5 MB"):
        ask(["Look", noise], session=session, display="none")
    assert api_env.requests == []


def test_more_images_than_the_api_takes_are_refused(api_env: FakeServer, session: Session) -> None:
    dot = image_bytes(2, 2)
    with pytest.raises(AttachmentError, match="601 images; the API takes at most 600"):
        ask(["Count them", *[dot] * 601], session=session, display="none")
    assert api_env.requests == []


def test_a_request_over_32_mb_is_refused(
    api_env: FakeServer, session: Session, tmp_path: Path
) -> None:
    big = tmp_path / "big.txt"
    big.write_text("a line of a very long log file\n" * 1_100_000)  # 33 MB
    with pytest.raises(AttachmentError, match="over the API's 32 MB limit"):
        ask("Summarise", files=[big], session=session, display="none")
    assert api_env.requests == []


# --------------------------------------------------------------------------- what is kept


def test_dry_run_and_the_run_log_keep_placeholders_not_bytes(
    api_env: FakeServer, session: Session, tmp_path: Path
) -> None:
    paper = tmp_path / "paper.pdf"
    paper.write_bytes(PDF)
    photo = image_bytes(3000, 2000, "JPEG")
    options = session.options()
    parts = prompt_parts(["Read", paper, photo])
    dry_run = session.dry_run(parts, options)
    report = dry_run.report()
    assert "[PDF paper.pdf, " in report
    assert "[image 1568×1045 JPEG, " in report
    assert "JVBER" not in report  # base64 of %PDF
    assert "/9j/" not in report  # base64 of a JPEG's first bytes
    # The count-tokens endpoint counted the image (1568 x 1045 / 750) and both PDF pages.
    assert dry_run.input_tokens == 1 + 2185 + 3000
    assert api_env.requests[-1].path == "/v1/messages/count_tokens"
    assert block_types(api_env.requests[-1].body["messages"][0]["content"]) == [
        "text",
        "document:application/pdf",
        "image:image/jpeg",
    ]

    session.ask(parts, options, display="none")
    logged = json.dumps(session.runs[-1].request, ensure_ascii=False)
    assert "[image 1568×1045 JPEG, " in logged
    assert "[PDF paper.pdf, " in logged
    assert len(logged) < 1000


def test_a_conversation_keeps_its_images_and_caches_them(
    ip: InteractiveShell, api_env: FakeServer
) -> None:
    ip.user_ns["chart"] = image_bytes(200, 100)
    api_env.enqueue(text_reply("A gradient."), text_reply("Left to right."))
    result, first = run(ip, "%%claude --chat\nWhat is this? {{ chart }}")
    assert result.success
    result, _ = run(ip, "%%claude --chat\nWhich way does it go?")
    assert result.success

    first_turn = api_env.requests[-1].body["messages"][0]["content"]
    assert block_types(first_turn) == ["text", "image:image/png"]
    assert decoded_image(first_turn[1]).size == (200, 100)
    second = api_env.requests[-1].body["messages"]
    assert second[1]["content"][-1]["cache_control"] == {"type": "ephemeral"}

    # Terminal IPython lists what was sent above the reply.
    assert "[sent [image 200×100 PNG, " in first.stdout

    _, captured = run(ip, "%claude history")
    assert "[image 200×100 PNG, " in captured.stdout
    assert "iVBOR" not in captured.stdout
    ip.user_ns.pop("chart")


def test_a_figure_in_the_system_prompt_is_refused(
    ip: InteractiveShell, api_env: FakeServer
) -> None:
    ip.user_ns["chart"] = image_bytes(20, 10)
    result, _ = run(ip, "%%claude -s 'Judge {{ chart }}'\nHello")
    assert "cannot go in the system prompt" in str(result.error_in_exec)
    assert api_env.requests == []
    ip.user_ns.pop("chart")


def test_an_incomplete_reply_to_an_image_keeps_what_arrived(
    api_env: FakeServer, session: Session
) -> None:
    api_env.enqueue(error_after(text_reply("Half an answer, then", chunk_size=5), 5))
    with pytest.raises(ClaudeError) as raised:
        ask(["Look", image_bytes(10, 10)], session=session, display="none")
    assert raised.value.reply is not None
    assert raised.value.reply.text == "Half an answer,"


def test_the_fake_server_refuses_what_the_api_refuses(api_env: FakeServer) -> None:
    client = anthropic.Anthropic()
    png = base64.b64encode(image_bytes(10, 10)).decode()
    wrong = {"type": "base64", "media_type": "image/jpeg", "data": png}
    with pytest.raises(anthropic.BadRequestError, match="does not match the provided media type"):
        client.messages.create(
            model="claude-sonnet-4-6",
            max_tokens=10,
            messages=[{"role": "user", "content": [{"type": "image", "source": wrong}]}],  # type: ignore[list-item, typeddict-item]
        )
    not_pdf = {"type": "base64", "media_type": "application/pdf", "data": png}
    with pytest.raises(anthropic.BadRequestError, match="PDF specified was not valid"):
        client.messages.count_tokens(
            model="claude-sonnet-4-6",
            messages=[{"role": "user", "content": [{"type": "document", "source": not_pdf}]}],  # type: ignore[list-item, typeddict-item]
        )
    client.close()
