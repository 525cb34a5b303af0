//! `openai`: chat completions through async-openai, against any OpenAI-compatible server. (Being built.)
