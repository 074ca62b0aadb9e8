"""The dashboard API (JWT, for people in a browser) and CORS in template.yaml: a subset of the
IAM API's routes, to the same functions, that exists only when JwtIssuer and JwtAudience are set."""

from __future__ import annotations

from typing import Any

from template_yaml import (
    cors_configuration,
    dashboard_routes,
    functions,
    load_template,
    route_functions,
)

# What a person in a dashboard does: look, approve or reject. Registering and removing waiters
# is the orchestrator's, over IAM.
DASHBOARD_ROUTES = {
    "GET /runs/{runId}/waiters/{stepKey}",
    "GET /runs/{runId}/waiters",
    "POST /runs/{runId}/signals/{signalName}",
    "POST /runs/{runId}/signals/{signalName}/failure",
    "GET /runs/{runId}/signals",
}
API_ARN = {
    "Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${DashboardApi}/*/*"
}


def resources() -> dict[str, dict[str, Any]]:
    resources: dict[str, dict[str, Any]] = load_template()["Resources"]
    return resources


def dashboard_resources() -> dict[str, dict[str, Any]]:
    """Every resource that is part of the dashboard API (named Dashboard..., or on it)."""
    return {
        name: resource
        for name, resource in resources().items()
        if name.startswith("Dashboard")
        or resource.get("Properties", {}).get("ApiId") == {"Ref": "DashboardApi"}
    }


def test_each_dashboard_route_is_an_iam_route_to_the_same_function() -> None:
    routes = dashboard_routes()
    assert set(routes) == DASHBOARD_ROUTES
    iam_routes = route_functions("HttpApi")
    assert {route: iam_routes[route] for route in routes} == routes


def test_the_dashboard_cannot_register_or_remove_waiters() -> None:
    reachable = set(dashboard_routes().values())
    assert not reachable & {"RegisterFunction", "RemoveFunction", "NotifierFunction"}
    assert not {r for r in dashboard_routes() if r.startswith(("PUT ", "DELETE "))}


def test_every_dashboard_resource_and_output_exists_only_with_the_dashboard() -> None:
    template = load_template()
    assert template["Conditions"]["HasDashboard"] == {
        "And": [
            {"Not": [{"Equals": [{"Ref": "JwtIssuer"}, ""]}]},
            {"Not": [{"Equals": [{"Ref": "JwtAudience"}, ""]}]},
        ]
    }
    found = dashboard_resources()
    # The api, authorizer, stage and alarm; an integration and a permission per function;
    # a route per route.
    assert len(found) == 4 + 2 * len(set(dashboard_routes().values())) + len(DASHBOARD_ROUTES)
    assert {name: r.get("Condition") for name, r in found.items()} == dict.fromkeys(
        found, "HasDashboard"
    )
    assert template["Outputs"]["DashboardApiUrl"]["Condition"] == "HasDashboard"
    for parameter in ("JwtIssuer", "JwtAudience", "CorsAllowOrigins"):
        assert template["Parameters"][parameter]["Default"] == ""


def test_every_dashboard_route_needs_a_jwt_of_the_configured_issuer_and_audience() -> None:
    (authorizer,) = [
        r["Properties"]
        for r in dashboard_resources().values()
        if r["Type"] == "AWS::ApiGatewayV2::Authorizer"
    ]
    assert authorizer["AuthorizerType"] == "JWT"
    assert authorizer["IdentitySource"] == ["$request.header.Authorization"]
    assert authorizer["JwtConfiguration"] == {
        "Issuer": {"Ref": "JwtIssuer"},
        "Audience": [{"Ref": "JwtAudience"}],
    }
    routes = [
        r["Properties"]
        for r in dashboard_resources().values()
        if r["Type"] == "AWS::ApiGatewayV2::Route"
    ]
    assert len(routes) == len(DASHBOARD_ROUTES)
    for route in routes:
        assert route["ApiId"] == {"Ref": "DashboardApi"}
        assert route["AuthorizationType"] == "JWT", route["RouteKey"]
        assert route["AuthorizerId"] == {"Ref": "DashboardAuthorizer"}, route["RouteKey"]


def test_the_dashboard_integrations_are_lambda_proxies_with_payload_2() -> None:
    integrations = [
        r["Properties"]
        for r in dashboard_resources().values()
        if r["Type"] == "AWS::ApiGatewayV2::Integration"
    ]
    assert integrations
    for integration in integrations:
        assert integration["IntegrationType"] == "AWS_PROXY"
        assert integration["PayloadFormatVersion"] == "2.0"


def test_the_dashboard_may_invoke_only_its_functions_and_only_from_its_api() -> None:
    permissions = {
        r["Properties"]["FunctionName"]["Ref"]: r["Properties"]
        for r in dashboard_resources().values()
        if r["Type"] == "AWS::Lambda::Permission"
    }
    assert set(permissions) == set(dashboard_routes().values())
    assert set(permissions) <= set(functions())
    for permission in permissions.values():
        assert permission["Action"] == "lambda:InvokeFunction"
        assert permission["Principal"] == "apigateway.amazonaws.com"
        assert permission["SourceArn"] == API_ARN


def test_the_dashboard_stage_deploys_itself_and_is_throttled() -> None:
    (stage,) = [
        r["Properties"]
        for r in dashboard_resources().values()
        if r["Type"] == "AWS::ApiGatewayV2::Stage"
    ]
    assert (stage["StageName"], stage["AutoDeploy"]) == ("$default", True)
    limits = stage["DefaultRouteSettings"]
    assert limits["ThrottlingBurstLimit"] > 0 and limits["ThrottlingRateLimit"] > 0


def test_both_apis_answer_browsers_with_one_cors_configuration_and_none_by_default() -> None:
    """Written twice (CloudFormation refuses YAML aliases): kept equal here."""
    configuration = cors_configuration("HttpApi")
    assert cors_configuration("DashboardApi") == configuration
    assert load_template()["Conditions"]["HasCors"] == {
        "Not": [{"Equals": [{"Ref": "CorsAllowOrigins"}, ""]}]
    }
    assert configuration["AllowOrigins"] == {"Split": [",", {"Ref": "CorsAllowOrigins"}]}
    # The methods the routes use, and the headers a browser's request may carry: a JWT or a
    # SigV4 signature, JSON, an idempotency key.
    methods = {route.partition(" ")[0] for route in route_functions("HttpApi")}
    assert set(configuration["AllowMethods"]) == methods
    assert {"authorization", "content-type", "idempotency-key"} <= set(
        configuration["AllowHeaders"]
    )
    assert configuration["ExposeHeaders"] == ["retry-after"]  # a 503's advice to the page
    assert "AllowCredentials" not in configuration  # tokens go in a header, never cookies


def test_optional_scopes_guard_the_deciding_and_the_reading_routes() -> None:
    routes = {
        r["Properties"]["RouteKey"]: r["Properties"]
        for r in dashboard_resources().values()
        if r["Type"] == "AWS::ApiGatewayV2::Route"
    }
    for route_key, route in routes.items():
        deciding = route_key.startswith("POST ")
        condition, param = (
            ("HasDecideScope", "JwtDecideScope")
            if deciding
            else (
                "HasReadScope",
                "JwtReadScope",
            )
        )
        assert route["AuthorizationScopes"] == {
            "If": [condition, [{"Ref": param}], {"Ref": "AWS::NoValue"}]
        }, route_key
    template = load_template()
    assert template["Conditions"]["HasDecideScope"] == {
        "Not": [{"Equals": [{"Ref": "JwtDecideScope"}, ""]}]
    }
    assert template["Parameters"]["JwtGroupsClaim"]["Default"] == "cognito:groups"
    deliver = template["Resources"]["DeliverFunction"]["Properties"]["Environment"]["Variables"]
    assert deliver["JWT_GROUPS_CLAIM"] == {"Ref": "JwtGroupsClaim"}
