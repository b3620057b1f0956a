"""``speechprune generate-transcripts``: new SIR dialogues in SPIRAL's JSON format, from any chat model.

The recipe follows the SPIRAL paper: a topic, a subtopic and a transcript type (lecture, meeting,
conversation) go in; the model writes a spoken transcript of about 90 seconds with natural disfluencies
and exactly one embedded, non-obvious detail, then a four-choice question that only that detail answers.
The reply is turned into a record of the published format (SPEC section 4) and checked with the same
validator as the builder uses, so ``speechprune build-spiral --annotations OUT.jsonl`` takes the file as it
is. Replies that fail the check are asked again (``--retries``).

Any OpenAI-compatible endpoint works (``POST {url}/v1/chat/completions``); the API key, if the server needs
one, is read from the environment variable named by ``--api-key-env`` (default ``OPENAI_API_KEY``).

Example:
    $ export OPENAI_API_KEY=...
    $ speechprune generate-transcripts --url https://api.openai.com --model gpt-4o \\
          --topic Astronomy --subtopic Exoplanets --type lecture --count 5 --out new.jsonl
    $ speechprune build-spiral --annotations new.jsonl --out new_spiral

Topics can also come from a JSON-lines file (``--topics``), one ``{"main_topic", "subtopic", "type"}``
object per line, with an optional ``"count"``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from .records import CATEGORIES, LETTERS, RecordError, parse_record

DEFAULT_SPEAKERS = {"lecture": 1, "meeting": 4, "conversation": 3}
SYSTEM_PROMPT = (
    "You write realistic spoken transcripts for a listening-comprehension benchmark. "
    "Reply with one JSON object and nothing else."
)
USER_PROMPT = """\
Write the transcript of a {kind} in {language} about {main_topic}, more precisely {subtopic}.
{speaker_line} It should take about 90 seconds to say: {min_words} to {max_words} words.

- Make it sound spoken, not written: natural disfluencies (uh, um, you know, restarts) where a real speaker \
would use them.
- Embed exactly one specific, non-obvious detail (a number, a name, a date, an unusual finding) in a single \
sentence. Say it once; do not repeat or summarise it anywhere else, and do not make it the obvious point of \
the talk.
- Then write one question that can only be answered by someone who heard that detail, with four plausible \
options of which exactly one is correct.

Return this JSON object:
{{"speakers": {{{speaker_genders}}},
 "turns": [{{"speaker": "spk_1", "sentences": ["first sentence", "second sentence"]}}, ...],
 "key_sentence": "the sentence holding the detail, copied exactly from turns",
 "question": "the question",
 "choices": ["option", "option", "option", "option"],
 "answer": "the letter (A, B, C or D) of the correct option"}}
Each turn lists its sentences in order. Options carry no letters."""


def build_prompt(main_topic: str, subtopic: str, kind: str, speakers: int, language: str = "English") -> list[dict]:
    """The chat messages that ask for one dialogue (the paper's recipe, in our words)."""
    if kind not in CATEGORIES:
        raise ValueError(f"type must be one of {CATEGORIES}, got {kind!r}")
    if speakers < 1:
        raise ValueError(f"speakers must be >= 1, got {speakers}")
    labels = [f"spk_{i}" for i in range(1, speakers + 1)]
    speaker_line = (
        "One speaker, labelled spk_1, talks throughout."
        if speakers == 1
        else f"{speakers} speakers, labelled {', '.join(labels)}, take turns; every one of them speaks."
    )
    user = USER_PROMPT.format(
        kind=kind,
        language=language,
        main_topic=main_topic,
        subtopic=subtopic,
        speaker_line=speaker_line,
        min_words=170,
        max_words=220,
        speaker_genders=", ".join(f'"{label}": "F or M"' for label in labels),
    )
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def chat(url: str, model: str, messages: list[dict], *, api_key: str | None, timeout: float, **options) -> str:
    """One OpenAI-compatible chat completion; returns the assistant message's text.

    ``url`` is the server root (``http://host:port``), its ``/v1`` or the full ``/v1/chat/completions`` address.
    """
    endpoint = url.rstrip("/")
    if not endpoint.endswith("/chat/completions"):
        endpoint = endpoint + ("/chat/completions" if endpoint.endswith("/v1") else "/v1/chat/completions")
    body = json.dumps({"model": model, "messages": messages, **options}).encode()
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(endpoint, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        reply = json.loads(response.read().decode("utf-8"))
    try:
        return reply["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as err:
        raise ValueError(f"the endpoint's reply has no choices[0].message.content: {str(reply)[:200]}") from err


def _json_object(text: str) -> dict:
    """The JSON object in a model reply, also when wrapped in a code fence or surrounded by prose."""
    fenced = re.search(r"```(?:json)?\s*(\{.*\})\s*```", text, re.DOTALL)
    candidate = fenced.group(1) if fenced else text[text.find("{") : text.rfind("}") + 1]
    obj = json.loads(candidate)
    if not isinstance(obj, dict):
        raise ValueError("the reply is not a JSON object")
    return obj


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def reply_to_record(
    reply: dict, record_id: str, main_topic: str, subtopic: str, kind: str, voice_language: str | None = None
) -> dict:
    """Turn the model's JSON reply into a source record of the published SPIRAL format.

    Raises:
        RecordError: the reply lacks something or does not fit (e.g. the key sentence is not in the turns).
    """
    try:
        speakers, turns = reply["speakers"], reply["turns"]
        key, question, choices, answer = reply["key_sentence"], reply["question"], reply["choices"], reply["answer"]
    except (KeyError, TypeError) as err:
        raise RecordError(f"the reply lacks {err}") from err
    if not isinstance(choices, list) or len(choices) != 4:
        raise RecordError(f"the reply must hold 4 choices, got {choices!r:.80}")
    if answer not in LETTERS:
        raise RecordError(f"the reply's answer must be a letter A-D, got {answer!r}")
    if not isinstance(turns, list) or not all(
        isinstance(t, dict) and isinstance(t.get("sentences"), list) for t in turns
    ):
        raise RecordError("the reply's turns must be objects with speaker and a list of sentences")
    if not isinstance(key, str) or not all(isinstance(s, str) for t in turns for s in t["sentences"]):
        raise RecordError("the reply's key sentence and sentences must be strings")
    transcript = [{"speaker": t.get("speaker"), "text": [q for q in map(_squash, t["sentences"]) if q]} for t in turns]
    sentences = [s for turn in transcript for s in turn["text"]]
    owners = [turn["speaker"] for turn in transcript for _ in turn["text"]]
    matches = [i for i, s in enumerate(sentences) if _squash(key) == s]
    matches = matches or [i for i, s in enumerate(sentences) if _squash(key) in s or (s and s in _squash(key))]
    if len(matches) != 1:
        raise RecordError(f"the key sentence matches {len(matches)} sentences of the turns")
    index = matches[0]
    key_speaker = owners[index]
    labelled = [f"{letter}. {_squash(str(choice))}" for letter, choice in zip(LETTERS, choices)]
    genders = (
        {label: str(g).strip().upper()[:1] for label, g in speakers.items()} if isinstance(speakers, dict) else {}
    )
    metadata = {"main_topic": main_topic, "subtopic": subtopic, "transcript_type": kind, "id": record_id}
    if voice_language:
        metadata["language"] = voice_language
    record = {
        "transcript": transcript,
        "original_key_sentence": sentences[index],
        "test_question": {
            "question": _squash(str(question)),
            "choices": labelled,
            "correct_answer": labelled[LETTERS.index(answer)],
        },
        "metadata": metadata,
        "audio_data": {
            "key_sentences": {
                "speaker": key_speaker,
                "text": sentences[index],
                "audio_file": f"{record_id}_{key_speaker}_key.wav",
                "indices": [index, index + 1],
                "audio_dir": "key_wavs",
            },
            "combined": {
                "audio_files": [f"{record_id}.wav"],
                "audio_folder": "wavs",
                # no real voice prompt: the file name carries the gender the builder needs
                "prompts_used": {label: f"generated/{label}_{g}.wav" for label, g in genders.items() if g in "FM"},
                "sentences": sentences,
            },
        },
    }
    parse_record(record)  # the builder's own check
    return record


def generate(
    items: list[dict],
    out: str | Path,
    *,
    url: str,
    model: str,
    api_key: str | None = None,
    language: str = "English",
    voice_language: str | None = None,
    id_prefix: str = "gen",
    retries: int = 2,
    timeout: float = 120.0,
    temperature: float | None = 0.9,
    json_mode: bool = True,
    log=print,
) -> dict:
    """Generate the dialogues of ``items`` and append them to ``out`` (JSON lines), one per line as made.

    Args:
        items: ``{"main_topic", "subtopic", "type", "count" (default 1), "speakers" (optional)}`` each.
        out: output file; ids continue after the records already in it (``{id_prefix}_{type}_{n}``).
        url, model, api_key: the OpenAI-compatible endpoint.
        language: language the dialogue is written in; ``voice_language``: espeak-ng voice language stored as
            ``metadata.language`` (None = the builder's default, ``en-us``).
        retries: extra attempts per dialogue when a reply is unusable.

    Returns:
        ``{"written": n, "failed": n, "attempts": n}``.
    """
    out = Path(out)
    used = set()
    if out.exists():
        used = {json.loads(line)["metadata"]["id"] for line in out.read_text().splitlines() if line.strip()}
    counts = {"written": 0, "failed": 0, "attempts": 0}
    options = {} if temperature is None else {"temperature": temperature}
    if json_mode:
        options["response_format"] = {"type": "json_object"}
    with open(out, "a", encoding="utf-8") as sink:
        for item in items:
            kind = item["type"]
            speakers = int(item.get("speakers") or DEFAULT_SPEAKERS.get(kind, 1))
            messages = build_prompt(item["main_topic"], item["subtopic"], kind, speakers, language)
            for _ in range(int(item.get("count", 1))):
                number = 0
                while f"{id_prefix}_{kind}_{number}" in used:
                    number += 1
                record_id = f"{id_prefix}_{kind}_{number}"
                record, last_error = None, None
                for attempt in range(retries + 1):
                    counts["attempts"] += 1
                    try:
                        text = chat(url, model, messages, api_key=api_key, timeout=timeout, **options)
                        record = reply_to_record(
                            _json_object(text), record_id, item["main_topic"], item["subtopic"], kind, voice_language
                        )
                        break
                    except (RecordError, ValueError, urllib.error.URLError, TimeoutError) as err:
                        last_error = err
                        time.sleep(min(2.0**attempt, 10.0) * 0.1)
                if record is None:
                    counts["failed"] += 1
                    log(f"{record_id}: gave up after {retries + 1} attempts: {last_error}")
                    continue
                sink.write(json.dumps(record, ensure_ascii=False) + "\n")
                sink.flush()
                used.add(record_id)
                counts["written"] += 1
    return counts


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="OpenAI-compatible server, e.g. http://127.0.0.1:8000")
    parser.add_argument("--model", required=True, help="model name sent to the endpoint")
    parser.add_argument("--out", required=True, help="JSON-lines file to append the records to")
    parser.add_argument("--topics", help="JSON-lines file of {main_topic, subtopic, type[, count, speakers]}")
    parser.add_argument("--topic", help="main topic (instead of --topics)")
    parser.add_argument("--subtopic", help="subtopic (with --topic)")
    parser.add_argument("--type", choices=CATEGORIES, default="lecture", help="transcript type (with --topic)")
    parser.add_argument("--count", type=int, default=1, help="dialogues per topic (with --topic)")
    parser.add_argument("--speakers", type=int, help="speakers per dialogue (default: 1 lecture, 4 meeting, 3 conv.)")
    parser.add_argument("--language", default="English", help="language to write the dialogues in")
    parser.add_argument("--voice-language", help="espeak-ng language for the builder, e.g. de, fr (default en-us)")
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    parser.add_argument("--id-prefix", default="gen", help="ids are PREFIX_TYPE_N")
    parser.add_argument("--retries", type=int, default=2, help="extra attempts when a reply is unusable")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    parser.add_argument("--temperature", type=float, default=0.9)
    parser.add_argument("--no-json-mode", action="store_true", help="do not send response_format json_object")


def main(args: argparse.Namespace) -> int:
    if args.topics:
        items = [json.loads(line) for line in Path(args.topics).read_text().splitlines() if line.strip()]
    elif args.topic and args.subtopic:
        items = [{"main_topic": args.topic, "subtopic": args.subtopic, "type": args.type, "count": args.count}]
    else:
        print("generate-transcripts: give --topics FILE, or --topic and --subtopic", file=sys.stderr)
        return 2
    if args.speakers:
        for item in items:
            item.setdefault("speakers", args.speakers)
    counts = generate(
        items,
        args.out,
        url=args.url,
        model=args.model,
        api_key=os.environ.get(args.api_key_env),
        language=args.language,
        voice_language=args.voice_language,
        id_prefix=args.id_prefix,
        retries=args.retries,
        timeout=args.timeout,
        temperature=args.temperature,
        json_mode=not args.no_json_mode,
        log=lambda message: print(message, file=sys.stderr),
    )
    print(
        f"wrote {counts['written']} dialogues to {args.out} ({counts['failed']} failed, {counts['attempts']} requests)"
    )
    return 0 if counts["failed"] == 0 else 1
