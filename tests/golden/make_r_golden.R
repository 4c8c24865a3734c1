#!/usr/bin/env Rscript
# Reference numbers for alnrisk's LASSO, nomogram, calibration and ROC statistics, from the R packages clinicians
# publish with (not from alnrisk):
#
#     apt-get install r-base-core r-cran-glmnet r-cran-rms r-cran-proc   # (jsonlite comes with them)
#     Rscript tests/golden/make_r_golden.R > tests/data/golden/r_golden.json
#
# Fixed data sets drawn here with R's own generator (set.seed), stored in the JSON with the results:
# - glmnet: 160 rows, 40 z-scored columns (three informative), a binomial outcome, and five folds (foldid).
#   glmnet(standardize = FALSE, thresh = 1e-14) on all rows: the lambda sequence (glmnet's default: 100 values,
#   lambda.min.ratio 1e-4 as n > p), the intercept and coefficients along the path; cv.glmnet on the same foldid
#   (type.measure = "deviance"): cvm, cvsd, lambda.min, lambda.1se and their 1-based indices.
# - rms: 200 rows, two continuous signatures and a 0/1 MRI LN read. lrm: coefficients and standard errors.
#   nomogram(maxscale = 100) with each axis over the predictor's range (the axis alnrisk draws: its minimum to its
#   maximum, given to nomogram as the end points of the axis values): points at each end of each axis, its scale
#   (points per unit of linear predictor, and the linear predictor at 0 points), the total-points -> probability
#   axis at fun.at (rms places those by approx() over 1,000 values of the linear predictor across lp.at, whose
#   range is recorded too), and each case's total points (the sum of approx() on each axis's points, exact for a
#   linear term).
# - rms::calibrate(method = "boot", B = 1000): predy and calibrated.orig (the apparent curve: deterministic), and
#   calibrated.corrected from 20 runs with different seeds: their mean and standard deviation (the Monte-Carlo
#   error of one run with B = 1000, which sets the test's tolerance).
# - pROC: auc and ci.auc(method = "delong") of the lrm's linear predictor and of the deep signature alone,
#   roc.test(method = "delong", paired = TRUE) between them, and coords(x = "best", best.method = "youden") on the
#   linear predictor, on a heavily tied score (the signature rounded to halves), and on four cases where two
#   thresholds tie for the best J (pROC lists every tied best threshold).

suppressPackageStartupMessages({
  library(jsonlite)
  library(glmnet)
  library(rms)
  library(pROC)
})

versions <- list(
  R = R.version.string,
  glmnet = as.character(packageVersion("glmnet")),
  rms = as.character(packageVersion("rms")),
  pROC = as.character(packageVersion("pROC")),
  jsonlite = as.character(packageVersion("jsonlite"))
)

# ---- glmnet -------------------------------------------------------------------------------------------------
set.seed(20261202)
n <- 160
p <- 40
x <- matrix(rnorm(n * p), n, p)
x <- scale(x)
attributes(x) <- list(dim = c(n, p))
y <- rbinom(n, 1, plogis(-0.3 + 0.9 * x[, 1] - 0.7 * x[, 2] + 0.5 * x[, 3]))
foldid <- sample(rep(1:5, length.out = n))
fit <- glmnet(x, y, family = "binomial", standardize = FALSE, thresh = 1e-14, maxit = 1e7)
cv <- cv.glmnet(x, y, family = "binomial", foldid = foldid, type.measure = "deviance",
                standardize = FALSE, thresh = 1e-14, maxit = 1e7)
stopifnot(isTRUE(all.equal(cv$lambda, fit$lambda)))
glmnet_out <- list(
  x = x, y = y, foldid = foldid,
  lambda = fit$lambda,
  a0 = unname(fit$a0),
  beta = unname(as.matrix(fit$beta)),  # p x length(lambda)
  cvm = cv$cvm, cvsd = cv$cvsd,
  lambda_min = cv$lambda.min, lambda_1se = cv$lambda.1se,
  index_min = which(cv$lambda == cv$lambda.min), index_1se = which(cv$lambda == cv$lambda.1se)
)

# ---- rms: lrm and nomogram ----------------------------------------------------------------------------------
set.seed(7)
m <- 200
d <- data.frame(rad = rnorm(m, 0.1, 1.2), deep = rnorm(m, -0.3, 0.8), ln = rbinom(m, 1, 0.4))
d$y <- rbinom(m, 1, plogis(-0.4 + 0.9 * d$rad + 1.3 * d$deep + 1.1 * d$ln))
dd <- datadist(d)
options(datadist = "dd")
f <- lrm(y ~ rad + deep + ln, data = d, x = TRUE, y = TRUE)
axis <- function(v) {
  ticks <- pretty(v)
  c(min(v), ticks[ticks > min(v) & ticks < max(v)], max(v))
}
fun_at <- c(0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
nom <- nomogram(f, rad = axis(d$rad), deep = axis(d$deep), ln = 0:1, fun = plogis, fun.at = fun_at,
                lp = FALSE, maxscale = 100)
ends <- function(name) {
  a <- nom[[name]]
  list(x = c(min(a[[name]]), max(a[[name]])),
       points = c(a$points[which.min(a[[name]])], a$points[which.max(a[[name]])]))
}
axis_points <- function(name, v) approx(nom[[name]][[name]], nom[[name]]$points, xout = v)$y
case_total <- axis_points("rad", d$rad) + axis_points("deep", d$deep) + axis_points("ln", d$ln)
prob_axis <- nom[["Predicted Value"]]
info <- attr(nom, "info")
rms_out <- list(
  rad = d$rad, deep = d$deep, ln = d$ln, y = d$y,
  coef = unname(coef(f)),
  se = unname(sqrt(diag(vcov(f)))),
  axis_ends = list(rad = ends("rad"), deep = ends("deep"), ln = ends("ln")),
  points_per_unit_lp = info$sc, lp_at_zero_points = unname(info$Intercept),
  lp_axis = range(info$lp.at),
  total_points_at = prob_axis$x, probability_at = prob_axis$x.real,
  case_total_points = case_total
)

# ---- rms::calibrate(method = "boot") ---------------------------------------------------------------------------
runs <- lapply(1:20, function(s) {
  set.seed(1000 + s)
  calibrate(f, method = "boot", B = 1000)
})
first <- runs[[1]]
corrected <- sapply(runs, function(r) r[, "calibrated.corrected"])
calibrate_out <- list(
  B = 1000, runs = length(runs),
  predy = unname(first[, "predy"]),
  apparent = unname(first[, "calibrated.orig"]),
  corrected_mean = unname(rowMeans(corrected)),
  corrected_sd = unname(apply(corrected, 1, sd))
)

# ---- pROC ---------------------------------------------------------------------------------------------------
lp <- unname(f$linear.predictors)
r_lp <- roc(d$y, lp, direction = "<", levels = c(0, 1), quiet = TRUE)
r_deep <- roc(d$y, d$deep, direction = "<", levels = c(0, 1), quiet = TRUE)
tied <- round(d$deep * 2) / 2
r_tied <- roc(d$y, tied, direction = "<", levels = c(0, 1), quiet = TRUE)
ci_of <- function(r) unname(as.numeric(ci.auc(r, method = "delong")))
test <- roc.test(r_lp, r_deep, method = "delong", paired = TRUE)
best <- function(r) {
  b <- coords(r, x = "best", best.method = "youden", ret = c("threshold", "sensitivity", "specificity"),
              transpose = FALSE)
  list(threshold = I(b$threshold), sensitivity = I(b$sensitivity), specificity = I(b$specificity))
}
# a Youden tie: thresholds 1.5 and 3.5 both give J = 0.5
tie_score <- c(1, 2, 3, 4)
tie_y <- c(0, 1, 0, 1)
tie_roc <- roc(tie_y, tie_score, direction = "<", levels = c(0, 1), quiet = TRUE)
proc_out <- list(
  lp = lp, deep = d$deep, tied = tied, y = d$y,
  auc_lp = as.numeric(auc(r_lp)), ci_lp = ci_of(r_lp), var_lp = var(r_lp, method = "delong"),
  auc_deep = as.numeric(auc(r_deep)), ci_deep = ci_of(r_deep),
  auc_tied = as.numeric(auc(r_tied)), ci_tied = ci_of(r_tied),
  test_z = unname(test$statistic), test_p = unname(test$p.value),
  youden_lp = best(r_lp), youden_tied = best(r_tied),
  youden_tie = c(list(score = tie_score, y = tie_y), best(tie_roc))
)

cat(toJSON(list(versions = versions, glmnet = glmnet_out, rms = rms_out, calibrate = calibrate_out,
                proc = proc_out),
           digits = NA, auto_unbox = TRUE, matrix = "rowmajor"))
cat("\n")
