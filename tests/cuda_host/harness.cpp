// Runs one kernel of src/deep/cuda_trunk/kernels.cu on the CPU (see shim.h). Used by tests/cuda_kernels_host.rs.
//   harness im2col[8]   N H W C KP ACT in.f32 bias.f32 out.f32
//   harness maxpool[8]  N H W C ACT    in.f32 bias.f32 out.f32
//   harness biasrelu[8] N H W C ACT    in.f32 bias.f32 out.f32
// The "8" names run the _c8 variants (8 channels per thread).
// Files are raw little-endian f32.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

extern "C" void alnrisk_im2col3x3_nhwc(const __half*, const __half*, __half*, int, int, int, int, int, int);
extern "C" void alnrisk_maxpool2_nhwc(const __half*, const __half*, __half*, int, int, int, int, int);
extern "C" void alnrisk_bias_relu_nhwc(const __half*, const __half*, __half*, int, int, int, int, int);
extern "C" void alnrisk_im2col3x3_nhwc_c8(const __half*, const __half*, __half*, int, int, int, int, int, int);
extern "C" void alnrisk_maxpool2_nhwc_c8(const __half*, const __half*, __half*, int, int, int, int, int);
extern "C" void alnrisk_bias_relu_nhwc_c8(const __half*, const __half*, __half*, int, int, int, int, int);

static std::vector<float> read_f32(const char* path) {
    std::vector<float> v;
    FILE* f = std::fopen(path, "rb");
    if (!f) {
        std::perror(path);
        std::exit(2);
    }
    float x;
    while (std::fread(&x, sizeof x, 1, f) == 1) v.push_back(x);
    std::fclose(f);
    return v;
}

static void write_f32(const char* path, const std::vector<float>& v) {
    FILE* f = std::fopen(path, "wb");
    if (!f || std::fwrite(v.data(), sizeof(float), v.size(), f) != v.size()) {
        std::perror(path);
        std::exit(2);
    }
    std::fclose(f);
}

int main(int argc, char** argv) {
    const bool c8 = argc > 1 && argv[1][0] != 0 && argv[1][std::strlen(argv[1]) - 1] == '8';
    std::string name = argc > 1 ? std::string(argv[1], std::strlen(argv[1]) - (c8 ? 1 : 0)) : "";
    if (argc == 11 && name == "im2col") {
        int n = std::atoi(argv[2]), h = std::atoi(argv[3]), w = std::atoi(argv[4]), c = std::atoi(argv[5]);
        int kp = std::atoi(argv[6]), act = std::atoi(argv[7]);
        std::vector<float> x = read_f32(argv[8]), b = read_f32(argv[9]);
        std::vector<float> col((size_t)n * h * w * kp, -1.0f);  // -1: a column the kernel forgot to write
        (c8 ? alnrisk_im2col3x3_nhwc_c8 : alnrisk_im2col3x3_nhwc)(x.data(), b.data(), col.data(), n, h, w, c, kp, act);
        write_f32(argv[10], col);
        return 0;
    }
    if (argc == 10 && (name == "maxpool" || name == "biasrelu")) {
        int n = std::atoi(argv[2]), h = std::atoi(argv[3]), w = std::atoi(argv[4]), c = std::atoi(argv[5]);
        int act = std::atoi(argv[6]);
        std::vector<float> x = read_f32(argv[7]), b = read_f32(argv[8]);
        typedef void (*map_kernel)(const __half*, const __half*, __half*, int, int, int, int, int);
        map_kernel k;
        size_t out;
        if (name == "maxpool") {
            k = c8 ? alnrisk_maxpool2_nhwc_c8 : alnrisk_maxpool2_nhwc;
            out = (size_t)n * (h / 2) * (w / 2) * c;
        } else {
            k = c8 ? alnrisk_bias_relu_nhwc_c8 : alnrisk_bias_relu_nhwc;
            out = (size_t)n * h * w * c;
        }
        std::vector<float> y(out, -1.0f);  // -1: an output the kernel forgot to write
        k(x.data(), b.data(), y.data(), n, h, w, c, act);
        write_f32(argv[9], y);
        return 0;
    }
    std::fprintf(stderr,
                 "usage: harness im2col[8] N H W C KP ACT in bias out | maxpool[8]|biasrelu[8] N H W C ACT in bias out\n");
    return 2;
}
