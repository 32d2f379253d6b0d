"""What llama-quantize writes when it re-quantizes the tiny K-quant Llama
(../tiny-llama-q4_k_m/tiny-llama-2l-Q4_K_M.gguf) to each mixture, with and without an
importance matrix: every tensor's type and the SHA-256 of its bytes (expected.json), and the
importance matrix itself (imatrix.gguf: llama-imatrix over ../iquants/calibration.txt, chunks of
128 tokens). Ember's quantize must write the same bytes.

usage: python make.py LLAMA_CPP_DIR   (the pinned llama.cpp b11312, built, with its gguf-py)"""
import hashlib, json, os, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "..", "tiny-llama-q4_k_m", "tiny-llama-2l-Q4_K_M.gguf")
# (llama-quantize type, with the importance matrix)
CASES = [("Q2_K", True), ("Q3_K_M", True), ("Q3_K_M", False), ("Q3_K_L", True),
         ("Q4_K_S", True), ("Q5_K_S", False), ("Q6_K", True), ("IQ4_XS", True),
         ("IQ4_XS", False), ("IQ4_NL", True), ("Q4_0", True), ("Q5_1", True), ("TQ1_0", False),
         ("TQ2_0", True), ("IQ3_S", True), ("IQ3_M", True), ("IQ3_XS", True), ("IQ3_M", False),
         ("IQ3_XXS", True), ("IQ2_XXS", True), ("IQ2_XS", True), ("IQ2_S", True), ("IQ2_M", True),
         ("IQ1_S", True), ("IQ1_M", True), ("Q2_K_S", True)]


def main():
    llama = sys.argv[1]
    sys.path.insert(0, os.path.join(llama, "gguf-py"))
    import gguf
    bin_dir = os.path.join(llama, "build", "bin")
    imatrix = os.path.join(HERE, "imatrix.gguf")
    # (Run from here with a relative text path: the file records it.)
    subprocess.run([os.path.join(bin_dir, "llama-imatrix"), "-m", MODEL, "-f",
                    "../iquants/calibration.txt", "-o", imatrix, "-c", "128", "-t", "2"],
                   check=True, capture_output=True, cwd=HERE)
    work = tempfile.mkdtemp()
    cases = []
    for ty, with_imatrix in CASES:
        out = os.path.join(work, f"{ty}-{with_imatrix}.gguf")
        args = [os.path.join(bin_dir, "llama-quantize"), "--allow-requantize"]
        if with_imatrix:
            args += ["--imatrix", imatrix]
        subprocess.run(args + [MODEL, out, ty], check=True, capture_output=True)
        tensors = [{"name": t.name, "type": t.tensor_type.name,
                    "sha256": hashlib.sha256(t.data.tobytes()).hexdigest()}
                   for t in gguf.GGUFReader(out).tensors]
        cases.append({"type": ty, "imatrix": with_imatrix, "tensors": tensors})
    json.dump({"notes": __doc__, "cases": cases}, open(os.path.join(HERE, "expected.json"), "w"),
              indent=1)


if __name__ == "__main__":
    main()
