import numpy as np
import pytest

from rftheory.models.activations import Activation, get_activation, known_activations

REGISTERED = known_activations()


def test_registry_lists_the_standard_activations():
    for name in ["relu", "tanh", "relu+tanh", "leaky_relu", "abs", "erf", "sigmoid", "softplus", "gelu", "silu"]:
        assert name in REGISTERED


@pytest.mark.parametrize("name", REGISTERED)
def test_derivative_matches_central_differences(name):
    act = get_activation(name)
    z = np.linspace(-4, 4, 801)
    z = z[np.abs(z) > 1e-3]  # skip the kinks of relu/abs/leaky_relu at 0
    h = 1e-6
    fd = (act.fn(z + h) - act.fn(z - h)) / (2 * h)
    np.testing.assert_allclose(act.deriv(z), fd, rtol=1e-6, atol=1e-8)


def test_closed_forms_against_scipy():
    from scipy.special import erf, expit

    z = np.linspace(-30, 30, 61)
    np.testing.assert_allclose(get_activation("sigmoid").fn(z), expit(z), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(get_activation("softplus").fn(z), np.log1p(np.exp(-np.abs(z))) + np.maximum(z, 0), rtol=1e-12)
    np.testing.assert_allclose(get_activation("gelu").fn(z), z * 0.5 * (1 + erf(z / np.sqrt(2))), rtol=1e-12)
    assert np.all(np.isfinite(get_activation("softplus").fn(np.array([800.0, -800.0]))))


def test_combination_is_sum_of_parts():
    z = np.linspace(-3, 3, 13)
    combo = get_activation("0.5*relu+2*tanh")
    np.testing.assert_allclose(combo.fn(z), 0.5 * np.maximum(z, 0) + 2 * np.tanh(z))
    np.testing.assert_allclose(get_activation("relu+tanh").fn(z), np.maximum(z, 0) + np.tanh(z))
    assert [c for c, _ in combo.parts] == [0.5, 2.0]


@pytest.mark.parametrize("bad", ["foo", "relu+foo", "2*", "relu++tanh"])
def test_unknown_activation_lists_known_names(bad):
    with pytest.raises(ValueError, match="known: .*relu"):
        get_activation(bad)


def test_non_string_activation_is_a_type_error():
    with pytest.raises(TypeError):
        get_activation(3.0)


def test_user_callable_activation():
    cube = Activation("cube", lambda z: z**3, lambda z: 3 * z**2)
    assert get_activation(cube) is cube
    np.testing.assert_allclose(cube.fn(np.array([2.0])), [8.0])
