"""Input/output cases of the SPIRAL accuracy metric, in the layout of evaluate's module template.

Each case holds the ``compute`` arguments and the values of the result that it pins down.
"""

test_cases = [
    {
        "predictions": ["A", "B", "C", "D"],
        "references": ["A", "B", "C", "D"],
        "result": {"accuracy": 1.0, "n": 4, "n_invalid": 0, "majority_letter": "A", "majority_baseline": 0.25},
    },
    {
        "predictions": ["B", "The answer is (C).", "I think A and B", "D) because it is said"],
        "references": ["B", "C", "A", "B"],
        "result": {"accuracy": 0.5, "n": 4, "n_invalid": 1, "majority_letter": "B", "majority_baseline": 0.5},
    },
    {
        "predictions": ["Option d", "(c)", "B"],
        "references": ["D", "C", "B"],
        "result": {"accuracy": 1 / 3, "n": 3, "n_invalid": 2, "majority_letter": "B", "majority_baseline": 1 / 3},
    },
    {
        "predictions": ["It was the red bicycle.", "A"],
        "references": ["C", "B"],
        "choices": [["a car", "a bus", "the red bicycle", "a train"], ["one", "two", "three", "four"]],
        "result": {"accuracy": 0.5, "n": 2, "n_invalid": 0},
    },
    {
        # K choices per question: "C" is no letter of a two-choice question, so it is invalid
        "predictions": ["B", "C", "J", "E"],
        "references": ["B", "A", "J", "E"],
        "num_choices": [2, 2, 10, 5],
        "result": {"accuracy": 0.75, "n": 4, "n_invalid": 1, "majority_letter": "A", "majority_baseline": 0.25},
    },
]
