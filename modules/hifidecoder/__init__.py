"""tortoise's fast HiFi-GAN decoder (``hifidecoder.pth``) fine-tuned on a fine-tuned GPT's own latents."""
