// Runs one kernel of src/deep/cuda_trunk/kernels.cu on the CPU (see shim.h). Used by tests/cuda_kernels_host.rs,
// which passes the launch the library plans (alnrisk::deep::trunk_launch): the kernel's extern "C" name and its
// integer arguments, exactly as the GPU build launches them.
//   harness alnrisk_im2col3x3_nhwc[_c8]     N H W C KP ACT in.f32 bias.f32 out.f32
//   harness alnrisk_maxpool2_nhwc[_c8]      N H W C ACT    in.f32 bias.f32 out.f32
//   harness alnrisk_bias_relu_nhwc[_c8]     N H W C ACT    in.f32 bias.f32 out.f32
// Files are raw little-endian f32. Outputs start as -1, so an element a kernel forgot to write shows.
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
    const std::string name = argc > 1 ? argv[1] : "";
    typedef void (*im2col_kernel)(const __half*, const __half*, __half*, int, int, int, int, int, int);
    typedef void (*map_kernel)(const __half*, const __half*, __half*, int, int, int, int, int);
    im2col_kernel im2col = name == "alnrisk_im2col3x3_nhwc"      ? alnrisk_im2col3x3_nhwc
                           : name == "alnrisk_im2col3x3_nhwc_c8" ? alnrisk_im2col3x3_nhwc_c8
                                                                 : nullptr;
    map_kernel map = name == "alnrisk_maxpool2_nhwc"       ? alnrisk_maxpool2_nhwc
                     : name == "alnrisk_maxpool2_nhwc_c8"  ? alnrisk_maxpool2_nhwc_c8
                     : name == "alnrisk_bias_relu_nhwc"    ? alnrisk_bias_relu_nhwc
                     : name == "alnrisk_bias_relu_nhwc_c8" ? alnrisk_bias_relu_nhwc_c8
                                                           : nullptr;
    if (argc == 11 && im2col) {
        int n = std::atoi(argv[2]), h = std::atoi(argv[3]), w = std::atoi(argv[4]), c = std::atoi(argv[5]);
        int kp = std::atoi(argv[6]), act = std::atoi(argv[7]);
        std::vector<float> x = read_f32(argv[8]), b = read_f32(argv[9]);
        std::vector<float> col((size_t)n * h * w * kp, -1.0f);
        im2col(x.data(), b.data(), col.data(), n, h, w, c, kp, act);
        write_f32(argv[10], col);
        return 0;
    }
    if (argc == 10 && map) {
        int n = std::atoi(argv[2]), h = std::atoi(argv[3]), w = std::atoi(argv[4]), c = std::atoi(argv[5]);
        int act = std::atoi(argv[6]);
        std::vector<float> x = read_f32(argv[7]), b = read_f32(argv[8]);
        const bool pool = name.rfind("alnrisk_maxpool2", 0) == 0;
        std::vector<float> y(pool ? (size_t)n * (h / 2) * (w / 2) * c : (size_t)n * h * w * c, -1.0f);
        map(x.data(), b.data(), y.data(), n, h, w, c, act);
        write_f32(argv[9], y);
        return 0;
    }
    std::fprintf(stderr, "usage: harness KERNEL N H W C [KP] ACT in bias out (see the top of harness.cpp)\n");
    return 2;
}
